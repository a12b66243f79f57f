//! FlorenceCaptionMeta downstream of the element: through transforming
//! elements, and with two florencecaption instances on one buffer.

mod common;

use std::sync::Once;

use gst::prelude::*;
use gstflorence::florencecaption::{MESSAGE_NAME, META_NAME};

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstflorence::plugin_register_static().unwrap();
    });
}

fn model_dir() -> String {
    common::tiny_model_dir().display().to_string()
}

/// Runs `videotestsrc ! florencecaption ! {tail} ! appsink` on one 320x240
/// frame; returns the meta's structure on the output (if any) and the bus
/// message's.
fn through(florence: &str, tail: &str) -> (Option<gst::Structure>, gst::Structure) {
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=1 pattern=smpte ! video/x-raw,format=RGB,width=320,height=240 ! \
         florencecaption mode=every-frame model-dir={} threads=1 num-beams=1 {florence} ! \
         {tail} ! appsink name=out sync=false",
        model_dir()
    ))
    .unwrap();
    let sink = pipeline
        .downcast_ref::<gst::Bin>()
        .unwrap()
        .by_name("out")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let sample = sink.pull_sample().expect("a frame");
    let meta = gst::meta::CustomMeta::from_buffer(sample.buffer().unwrap(), META_NAME)
        .ok()
        .map(|m| m.structure().to_owned());
    let bus = pipeline.bus().unwrap();
    let message = loop {
        let msg = bus
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(60),
                &[gst::MessageType::Element],
            )
            .expect("a florence-caption message");
        if let Some(s) = msg.structure().filter(|s| s.name() == MESSAGE_NAME) {
            break s.to_owned();
        }
    };
    pipeline.set_state(gst::State::Null).unwrap();
    (meta, message)
}

fn json(s: &gst::StructureRef) -> serde_json::Value {
    serde_json::from_str(&s.get::<String>("result").unwrap()).unwrap()
}

fn boxes(v: &serde_json::Value) -> Vec<f64> {
    v["bboxes"]
        .as_array()
        .expect("bboxes")
        .iter()
        .flat_map(|b| b.as_array().unwrap().iter().map(|n| n.as_f64().unwrap()))
        .collect()
}

#[test]
fn videoscale_scales_the_result_coordinates_and_size() {
    init();
    let (meta, analysed) = through(
        "name=f task=od",
        "videoscale ! video/x-raw,width=640,height=120",
    );
    let meta = meta.expect("the meta survives videoscale");
    assert_eq!(meta.get::<u32>("image-width").unwrap(), 640);
    assert_eq!(meta.get::<u32>("image-height").unwrap(), 120);
    let (before, after) = (boxes(&json(&analysed)), boxes(&json(&meta)));
    assert!(
        !before.is_empty(),
        "the tiny model found no box: {analysed}"
    );
    assert_eq!(before.len(), after.len());
    for (i, (b, a)) in before.iter().zip(&after).enumerate() {
        let factor = if i % 2 == 0 { 2.0 } else { 0.5 };
        assert!((b * factor - a).abs() < 1e-6, "coordinate {i}: {b} -> {a}");
    }
    // Nested per-instance results follow too.
    let own = meta.get::<gst::Structure>("results").unwrap();
    let own = own.get::<gst::Structure>("f").unwrap();
    assert_eq!(own.get::<u32>("image-width").unwrap(), 640);
    assert_eq!(boxes(&json(&own)), after);
}

#[test]
fn a_conversion_without_scaling_keeps_the_meta_as_it_is() {
    init();
    let (meta, analysed) = through("task=od", "videoconvert ! video/x-raw,format=I420");
    let meta = meta.expect("the meta survives videoconvert");
    assert_eq!(json(&meta), json(&analysed));
    assert_eq!(meta.get::<u32>("image-width").unwrap(), 320);
}

#[test]
fn two_instances_each_leave_their_result() {
    init();
    let (meta, _) = through(
        "name=cap",
        &format!(
            "florencecaption name=det mode=every-frame model-dir={} threads=1 num-beams=1 task=od",
            model_dir()
        ),
    );
    let meta = meta.expect("a meta");
    // The first instance's result stays at the top level (single-instance readers)...
    assert_eq!(meta.get::<String>("task").unwrap(), "<CAPTION>");
    assert_eq!(meta.get::<String>("element").unwrap(), "cap");
    // ...and each instance's is under results.<name>.
    let results = meta.get::<gst::Structure>("results").unwrap();
    let cap = results.get::<gst::Structure>("cap").unwrap();
    let det = results.get::<gst::Structure>("det").unwrap();
    assert_eq!(cap.get::<String>("task").unwrap(), "<CAPTION>");
    assert_eq!(det.get::<String>("task").unwrap(), "<OD>");
    assert_eq!(det.get::<String>("element").unwrap(), "det");
    assert!(json(&det)["bboxes"].is_array());
}
