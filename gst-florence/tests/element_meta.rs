//! FlorenceCaptionMeta downstream of the element: through transforming
//! elements, and with two florencecaption instances on one buffer.

mod common;

use common::{init_element as init, tiny_model_arg as model_dir};

use gst::glib;
use gst::prelude::*;
use gstflorence::florencecaption::{MESSAGE_NAME, META_NAME};

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
    // The bus message names its element as florence.h promises (field `element`).
    assert_eq!(analysed.get::<String>("element").as_deref(), Ok("f"));
    assert_eq!(meta.get::<String>("element").as_deref(), Ok("f"));
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

/// The `#define NAME "value"` strings of the C header.
fn header_strings() -> Vec<String> {
    let header = std::fs::read_to_string(
        common::root().join("gst-florence/include/gst/florence/florence.h"),
    )
    .unwrap();
    header
        .lines()
        .filter(|l| l.starts_with("#define FLORENCE_"))
        .filter_map(|l| l.split('"').nth(1).map(str::to_owned))
        .collect()
}

#[test]
fn the_c_header_names_every_field() {
    init();
    let documented = header_strings();
    let (meta, message) = through("name=f", "identity");
    let meta = meta.unwrap();
    for s in [
        &meta,
        &message,
        &meta.get::<gst::Structure>("results").unwrap(),
    ] {
        for field in s.fields() {
            if field == "f" {
                continue; // an element name inside `results`
            }
            assert!(
                documented.iter().any(|d| d == field),
                "{field} is not in florence.h"
            );
        }
    }
    for field in gstflorence::protocol::RequestField::ALL.map(|f| f.name()) {
        assert!(
            documented.iter().any(|d| d == field),
            "request field {field} is not in florence.h"
        );
    }
    for name in [
        META_NAME,
        MESSAGE_NAME,
        gstflorence::florencecaption::REQUEST_META_NAME,
    ] {
        assert!(
            documented.iter().any(|d| d == name),
            "{name} is not in florence.h"
        );
    }
    // It compiles as C against GStreamer's headers.
    let scratch = common::scratch::Scratch::new("header");
    let dir = scratch.path();
    let c = dir.join("use.c");
    std::fs::write(
        &c,
        "#include <gst/gst.h>\n#include <gst/florence/florence.h>\n\
         const gchar *f (GstBuffer *b) {\n\
           GstCustomMeta *m = gst_buffer_get_custom_meta (b, FLORENCE_CAPTION_META);\n\
           return m ? gst_structure_get_string (gst_custom_meta_get_structure (m), FLORENCE_FIELD_TEXT) : NULL;\n\
         }\n",
    )
    .unwrap();
    let cflags = std::process::Command::new("pkg-config")
        .args(["--cflags", "gstreamer-1.0"])
        .output()
        .unwrap();
    let cflags = String::from_utf8(cflags.stdout).unwrap();
    let out = std::process::Command::new("cc")
        .args(["-fsyntax-only", "-Wall", "-Werror"])
        .arg(format!(
            "-I{}",
            common::root().join("gst-florence/include").display()
        ))
        .args(cflags.split_whitespace())
        .arg(&c)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn gst_inspect_metadata_is_accurate() {
    init();
    let factory = gst::ElementFactory::find("florencecaption").unwrap();
    let description = factory.metadata("description").unwrap();
    assert!(
        !description.contains('\n') && !description.contains("gst-launch"),
        "{description}"
    );
    assert!(description.len() < 120, "one line: {description}");
    let plugin = gst::Registry::get().find_plugin("florence").unwrap();
    // The MIT choice of Cargo.toml's license, in GStreamer's name for it.
    assert!(env!("CARGO_PKG_LICENSE").split(" OR ").any(|l| l == "MIT"));
    assert_eq!(plugin.license(), "MIT/X11");
    let element = gst::ElementFactory::make("florencecaption")
        .build()
        .unwrap();
    let pspec = element.find_property("last-latency-ms").unwrap();
    let pspec = pspec.downcast_ref::<glib::ParamSpecDouble>().unwrap();
    assert_eq!((pspec.minimum(), pspec.maximum()), (0.0, 86_400_000.0));
    for name in ["inference-interval", "latency", "drain-timeout"] {
        let blurb = element
            .find_property(name)
            .unwrap()
            .blurb()
            .unwrap_or_default()
            .to_string();
        assert!(
            blurb.contains("ms") || blurb.contains("millisecond"),
            "{name}: {blurb}"
        );
    }
}
