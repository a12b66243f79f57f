//! florencecaption with every documented decoding combination, Florence-2's
//! `<loc_>` region notation, and text inputs too long for the model.

mod common;

use common::scene;

use common::init_element as init;

use gst::glib;
use gst::prelude::*;
use gstflorence::engine::preprocess::RgbImage;
use gstflorence::engine::task::{Task, TaskInput};
use gstflorence::engine::{GenerationOptions, Request};
use gstflorence::florencecaption::{ImageSize, META_NAME};

fn harness(props: &str, img: &RgbImage) -> gst_check::Harness {
    let mut h = gst_check::Harness::new_parse(&format!(
        "florencecaption model-dir={} mode=every-frame threads=1 {props}",
        common::tiny_model_dir().display()
    ));
    h.set_src_caps_str(&format!(
        "video/x-raw,format=RGB,width={},height={},framerate=30/1",
        img.width, img.height
    ));
    h
}

use common::{meta_field as field, request_buffer as buffer};

fn token_count(buf: &gst::BufferRef) -> u64 {
    let meta = gst::meta::CustomMeta::from_buffer(buf, META_NAME).unwrap();
    meta.structure().get::<u64>("token-count").unwrap()
}

#[test]
fn every_decoding_combination_gives_a_result() {
    init();
    let img = scene();
    let engine = common::tiny_engine();
    // Per buffer (request meta) ...
    let mut h = harness("", &img);
    for beams in [1u32, 3] {
        for temperature in [0.0f64, 0.8] {
            for (min, max) in [(0u32, 1u32), (4, 4), (2, 12)] {
                let label = format!("beams {beams} temperature {temperature} min {min} max {max}");
                h.push(buffer(
                    &img,
                    &[
                        ("num-beams", beams.to_send_value()),
                        ("temperature", temperature.to_send_value()),
                        ("seed", 3u64.to_send_value()),
                        ("min-new-tokens", min.to_send_value()),
                        ("max-new-tokens", max.to_send_value()),
                    ],
                ))
                .unwrap();
                let out = h.pull().unwrap();
                assert_eq!(field(&out, "error"), None, "{label}");
                let n = token_count(&out);
                assert!(
                    (u64::from(min)..=u64::from(max)).contains(&n),
                    "{label}: {n}"
                );
                let want = engine
                    .run(
                        &img,
                        &Request {
                            task: Task::Caption,
                            input: TaskInput::default(),
                            options: GenerationOptions {
                                num_beams: Some(beams as usize),
                                temperature: (temperature > 0.0).then_some(temperature as f32),
                                seed: Some(3),
                                min_new_tokens: Some(min as usize),
                                max_new_tokens: Some(max as usize),
                                ..GenerationOptions::default()
                            },
                        },
                    )
                    .unwrap();
                assert_eq!(field(&out, "text").unwrap(), want.result.text(), "{label}");
            }
        }
    }
    // ... and as properties: sampling with the model's default 3 beams.
    for props in [
        "temperature=0.7 seed=1",
        "temperature=0.7 num-beams=4 min-new-tokens=3 max-new-tokens=3",
    ] {
        let mut h = harness(props, &img);
        h.push(buffer(&img, &[])).unwrap();
        let out = h.pull().unwrap();
        assert_eq!(field(&out, "error"), None, "{props}");
        assert!(field(&out, "text").is_some(), "{props}");
    }
}

#[test]
fn region_tasks_take_loc_notation_in_prompt_and_request_text() {
    init();
    let img = scene();
    let engine = common::tiny_engine();
    let loc = "<loc_343><loc_652><loc_504><loc_806>";
    let mut req = Request::new(Task::RegionToCategory);
    req.input.text = Some(loc.into());
    let want = engine.run(&img, &req).unwrap();
    // The same box in pixels quantises to the same bins: the same answer.
    let mut pixels = Request::new(Task::RegionToCategory);
    pixels.input.region = Some([220.0, 313.0, 323.0, 387.0]);
    assert_eq!(engine.run(&img, &pixels).unwrap().ids, want.ids);

    let mut h = harness(&format!("task=region-to-category prompt={loc}"), &img);
    h.push(buffer(&img, &[])).unwrap();
    let out = h.pull().unwrap();
    assert_eq!(field(&out, "error"), None);
    assert_eq!(
        field(&out, "result").unwrap(),
        serde_json::to_string(&want.result).unwrap()
    );

    // Per buffer: <loc_> text replaces the region property, and a pixel region the prompt.
    let mut h = harness("task=region-to-category region=0,0,10,10", &img);
    h.push(buffer(&img, &[("text", loc.to_send_value())]))
        .unwrap();
    let out = h.pull().unwrap();
    assert_eq!(
        field(&out, "result").unwrap(),
        serde_json::to_string(&want.result).unwrap()
    );
    h.push(buffer(&img, &[("text", "not a region".to_send_value())]))
        .unwrap();
    let out = h.pull().unwrap();
    assert_eq!(
        field(&out, "error-kind").as_deref(),
        Some("invalid-request")
    );
    assert!(field(&out, "error").unwrap().contains("<loc_x1>"));
}

fn start_error(props: &str) -> String {
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=1 ! florencecaption name=f model-dir={} ! fakesink",
        common::tiny_model_dir().display()
    ))
    .unwrap();
    let f = pipeline
        .downcast_ref::<gst::Bin>()
        .unwrap()
        .by_name("f")
        .unwrap();
    for (k, v) in props.split('|').filter_map(|kv| kv.split_once('=')) {
        f.set_property_from_str(k, v);
    }
    assert!(pipeline.set_state(gst::State::Paused).is_err(), "{props}");
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(gst::ClockTime::from_seconds(10), &[gst::MessageType::Error])
        .expect("an error message");
    pipeline.set_state(gst::State::Null).unwrap();
    let gst::MessageView::Error(err) = msg.view() else {
        unreachable!()
    };
    err.error().to_string()
}

#[test]
fn text_inputs_too_long_for_the_model_are_refused_once() {
    init();
    let img = scene();
    let long = "猫".repeat(1000);
    for task in [
        "vqa",
        "caption-to-phrase-grounding",
        "open-vocabulary-detection",
    ] {
        let err = start_error(&format!("task={task}|prompt={long}"));
        assert!(err.contains("prompt tokens"), "{task}: {err}");
    }
    let err = start_error("task=region-to-ocr|prompt=<loc_1><loc_2>");
    assert!(err.contains("<loc_x1>"), "{err}");

    let mut h = harness("", &img);
    h.push(buffer(
        &img,
        &[
            ("task", "vqa".to_send_value()),
            ("text", long.to_send_value()),
        ],
    ))
    .unwrap();
    let out = h.pull().unwrap();
    assert_eq!(
        field(&out, "error-kind").as_deref(),
        Some("invalid-request")
    );
    assert!(field(&out, "error").unwrap().contains("prompt tokens"));
    // The next frame is served.
    h.push(buffer(&img, &[])).unwrap();
    assert_eq!(field(&h.pull().unwrap(), "error"), None);
}

#[test]
fn image_size_property_sets_the_resolution() {
    init();
    let img = scene();
    let engine = gstflorence::engine::Florence::load(
        &common::tiny_model_dir(),
        gstflorence::engine::SessionOptions {
            intra_threads: 1,
            image_size: Some(768),
            ..Default::default()
        },
    )
    .unwrap();
    let want = engine.run(&img, &Request::new(Task::Od)).unwrap();
    let mut h = harness("image-size=768 task=od", &img);
    h.push(buffer(&img, &[])).unwrap();
    let out = h.pull().unwrap();
    assert_eq!(
        field(&out, "result").unwrap(),
        serde_json::to_string(&want.result).unwrap()
    );
    // The property is an enum: what it takes is in its spec, and a parser
    // refuses anything else up front (0, the old "model's own", still parses).
    let spec = gst::ElementFactory::make("florencecaption")
        .build()
        .unwrap()
        .find_property("image-size")
        .unwrap();
    let spec = spec.downcast::<glib::ParamSpecEnum>().unwrap();
    let class = spec.enum_class();
    let nicks: Vec<&str> = class.values().iter().map(|v| v.nick()).collect();
    assert_eq!(nicks, ["model", "384", "768"]);
    let parsed = |value: &str| {
        gst::parse::launch(&format!(
            "fakesrc ! florencecaption name=f image-size={value} ! fakesink"
        ))
        .map(|p| {
            let f: gst::Element = common::child(&p, "f");
            f.property::<ImageSize>("image-size")
        })
    };
    assert_eq!(parsed("0").unwrap(), ImageSize::Model);
    assert_eq!(parsed("384").unwrap(), ImageSize::Px384);
    assert_eq!(parsed("768").unwrap(), ImageSize::Px768);
    assert!(parsed("512").is_err());
}

#[test]
fn live_mode_says_once_that_it_ignores_per_buffer_requests() {
    init();
    let img = scene();
    let element = gst::ElementFactory::make("florencecaption")
        .property("model-dir", common::tiny_model_dir().display().to_string())
        .property("threads", 1u32)
        .property("num-beams", 1u32)
        .property("max-new-tokens", 2u32)
        .build()
        .unwrap();
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    let mut h = gst_check::Harness::with_element(&element, Some("sink"), Some("src"));
    h.set_src_caps_str(&format!(
        "video/x-raw,format=RGB,width={},height={},framerate=30/1",
        img.width, img.height
    ));
    // A plain frame: no warning.
    h.push(buffer(&img, &[])).unwrap();
    assert!(bus.pop_filtered(&[gst::MessageType::Warning]).is_none());
    for _ in 0..3 {
        h.push(buffer(&img, &[("task", "<OD>".to_send_value())]))
            .unwrap();
    }
    let warnings: Vec<String> =
        std::iter::from_fn(|| bus.pop_filtered(&[gst::MessageType::Warning]))
            .map(|m| match m.view() {
                gst::MessageView::Warning(w) => w.error().to_string(),
                _ => unreachable!(),
            })
            .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("live mode ignores") && warnings[0].contains("mode=every-frame"),
        "{warnings:?}"
    );
}
