//! Helpers shared by the integration tests.
#![allow(dead_code)]
// Each test binary uses some of the shared helpers.
#![allow(unused_imports)]

use std::path::PathBuf;

pub use florence_test_support::{
    fixture_png, fixtures, hailo_standin_bridge_dir, hailo_standin_library, model_copies, process,
    root, scratch, tiny_model_dir,
};
use gstflorence::engine::Florence;
use gstflorence::engine::SessionOptions;
use gstflorence::engine::image_io::{self, ImageLimits};
use gstflorence::engine::preprocess::RgbImage;
use gstflorence::engine::{Request, task::Task};
use serde_json::Value;

/// GStreamer initialised and the plugin registered, once per test process.
pub fn init_element() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstflorence::plugin_register_static().unwrap();
    });
}

/// The tiny model's directory as the element's `model-dir` takes it.
pub fn tiny_model_arg() -> String {
    tiny_model_dir().display().to_string()
}

/// The element named `name` in a parsed pipeline, as `T` (AppSrc, AppSink, Element).
pub fn child<T: gst::prelude::IsA<gst::Element>>(pipeline: &gst::Element, name: &str) -> T {
    use gst::prelude::*;
    pipeline
        .downcast_ref::<gst::Bin>()
        .unwrap()
        .by_name(name)
        .unwrap_or_else(|| panic!("no element {name}"))
        .downcast::<T>()
        .unwrap()
}

/// The tiny model on one ONNX Runtime thread (the reference for the element's output).
pub fn tiny_engine() -> Florence {
    Florence::load(
        &tiny_model_dir(),
        SessionOptions {
            intra_threads: 1,
            ..SessionOptions::default()
        },
    )
    .unwrap()
}

/// target/<profile>, where cargo puts libgstflorence.so for gst-launch and Python.
pub fn plugin_dir() -> PathBuf {
    florence_test_support::built("libgstflorence.so");
    florence_test_support::built_dir()
}

/// JSON equality with numbers compared as f64 within 1e-3 (the reference
/// stores ints where the engine has f64 of integral value).
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            (x.as_f64().unwrap_or(f64::NAN) - y.as_f64().unwrap_or(f64::NAN)).abs() < 1e-3
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// A frame of `img` as a buffer, with a `FlorenceRequestMeta` holding `fields`
/// (none: no meta, the element's properties apply).
pub fn request_buffer(
    img: &gstflorence::engine::preprocess::RgbImage,
    fields: &[(&str, glib::SendValue)],
) -> gst::Buffer {
    let buf = gst::Buffer::from_mut_slice(img.data.clone());
    if fields.is_empty() {
        buf
    } else {
        with_request(buf, fields)
    }
}

/// `buf` with a `FlorenceRequestMeta` holding `fields`.
pub fn with_request(mut buf: gst::Buffer, fields: &[(&str, glib::SendValue)]) -> gst::Buffer {
    let b = buf.get_mut().unwrap();
    let mut meta =
        gst::meta::CustomMeta::add(b, gstflorence::florencecaption::REQUEST_META_NAME).unwrap();
    for (name, value) in fields {
        meta.mut_structure().set_value(*name, value.clone());
    }
    buf
}

/// A string field of the buffer's result meta.
pub fn meta_field(buf: &gst::BufferRef, name: &str) -> Option<String> {
    let meta =
        gst::meta::CustomMeta::from_buffer(buf, gstflorence::florencecaption::META_NAME).ok()?;
    meta.structure().get::<String>(name).ok()
}

/// Gives `element` a bus of its own whose sync handler calls `on_result` on
/// the worker's (or streaming) thread for every `florence-caption` message it
/// posts, before the message is dropped: results become events a test waits
/// for (and, by blocking in `on_result`, holds the worker with).
pub fn on_each_result(element: &gst::Element, on_result: impl Fn() + Send + Sync + 'static) {
    use gst::prelude::*;
    let bus = gst::Bus::new();
    bus.set_sync_handler(move |_, msg| {
        if msg
            .structure()
            .is_some_and(|s| s.name() == gstflorence::florencecaption::MESSAGE_NAME)
        {
            on_result();
        }
        gst::BusSyncReply::Drop
    });
    element.set_bus(Some(&bus));
}

/// The fixture scene most tests caption (640x480).
pub fn scene() -> RgbImage {
    image_io::read(
        &fixtures().join("images/scene_640x480.png"),
        &ImageLimits::default(),
    )
    .unwrap()
}

/// A greedy detailed caption of exactly `tokens` tokens: long enough that
/// requests started while it decodes meet it (in turns, in a batch).
pub fn long_caption(tokens: usize) -> Request {
    let mut r = Request::new(Task::MoreDetailedCaption);
    r.options.num_beams = Some(1);
    r.options.max_new_tokens = Some(tokens);
    r.options.min_new_tokens = Some(tokens);
    r
}

/// Session options for tests of requests sharing a model: every request runs
/// its vision encoder (no reuse), so there are more turns to take.
pub fn uncached_vision() -> SessionOptions {
    SessionOptions {
        vision_cache: false,
        ..SessionOptions::default()
    }
}

/// The ids each request gets on a model of its own, alone (one request per
/// decoder run).
pub fn solo_ids<'a>(
    dir: &std::path::Path,
    img: &RgbImage,
    requests: impl IntoIterator<Item = &'a Request>,
) -> Vec<Vec<u32>> {
    let solo = Florence::load(dir, uncached_vision()).unwrap();
    requests
        .into_iter()
        .map(|r| {
            let out = solo.run(img, r).unwrap();
            assert_eq!(out.timings.decode_batch, 1, "{:?} alone", r.task);
            out.ids
        })
        .collect()
}

/// Asserts that a run stopped early for `why` (its cancel, its deadline).
#[track_caller]
pub fn assert_interrupted<T: std::fmt::Debug>(
    r: &Result<T, gstflorence::engine::EngineError>,
    why: gstflorence::engine::Interruption,
) {
    assert!(
        matches!(r, Err(gstflorence::engine::EngineError::Interrupted(w)) if *w == why),
        "{r:?}, expected {why:?}"
    );
}
