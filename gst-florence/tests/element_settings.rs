//! florencecaption's settings over its life: when the model loads and reloads,
//! and property changes while PLAYING that the model cannot run.

mod common;

use common::init_element as init;

use gst::prelude::*;
use gstflorence::florencecaption::META_NAME;

fn element(model_dir: &str) -> (gst::Element, gst::Bus) {
    let e = gst::ElementFactory::make("florencecaption")
        .property("model-dir", model_dir)
        .property_from_str("mode", "every-frame")
        .property("threads", 1u32)
        .property("num-beams", 1u32)
        .property("max-new-tokens", 4u32)
        .build()
        .unwrap();
    let bus = gst::Bus::new();
    e.set_bus(Some(&bus));
    (e, bus)
}

/// How many model loads started since the last call.
fn loads(bus: &gst::Bus) -> usize {
    let mut n = 0;
    while let Some(m) = bus.pop_filtered(&[gst::MessageType::Progress]) {
        if let gst::MessageView::Progress(p) = m.view()
            && p.get().0 == gst::ProgressType::Start
        {
            n += 1;
        }
    }
    n
}

#[test]
fn the_model_loads_at_null_to_ready_and_only_when_a_model_property_changes() {
    init();
    let dir = common::tiny_model_dir().display().to_string();
    let (e, bus) = element(&dir);
    e.set_state(gst::State::Ready).unwrap();
    assert_eq!(loads(&bus), 1, "loaded at NULL->READY");
    for _ in 0..3 {
        e.set_state(gst::State::Paused).unwrap();
        e.set_state(gst::State::Ready).unwrap();
    }
    assert_eq!(loads(&bus), 0, "kept across READY<->PAUSED");
    // A property the model does not depend on: no reload.
    e.set_property_from_str("task", "od");
    e.set_property("max-new-tokens", 8u32);
    e.set_state(gst::State::Paused).unwrap();
    e.set_state(gst::State::Ready).unwrap();
    assert_eq!(loads(&bus), 0);
    // One it depends on, changed in READY: reloaded on the way to PAUSED.
    e.set_property("threads", 2u32);
    e.set_state(gst::State::Paused).unwrap();
    assert_eq!(loads(&bus), 1, "reloaded after threads changed");
    // A user's own setting: a new user of the model, the change applied.
    e.set_state(gst::State::Ready).unwrap();
    e.set_property("decode-slowdown", 1.0f64);
    e.set_state(gst::State::Paused).unwrap();
    assert_eq!(loads(&bus), 1, "reloaded after decode-slowdown changed");
    assert_eq!(e.property::<f64>("decode-slowdown"), 1.0);
    e.set_state(gst::State::Null).unwrap();
    e.set_state(gst::State::Ready).unwrap();
    assert_eq!(loads(&bus), 1, "dropped at NULL, loaded again");
    e.set_state(gst::State::Null).unwrap();
}

#[test]
fn a_broken_model_fails_the_change_to_ready() {
    init();
    let (e, bus) = element("/nonexistent/florence");
    assert!(e.set_state(gst::State::Ready).is_err());
    let msg = bus
        .pop_filtered(&[gst::MessageType::Error])
        .expect("an error message");
    let gst::MessageView::Error(err) = msg.view() else {
        unreachable!()
    };
    assert!(
        err.error().to_string().contains("/nonexistent/florence"),
        "{}",
        err.error()
    );
    // Settings the model cannot run fail it too.
    let dir = common::tiny_model_dir().display().to_string();
    let (e, _bus) = element(&dir);
    e.set_property_from_str("task", "vqa");
    assert!(e.set_state(gst::State::Ready).is_err());
    e.set_state(gst::State::Null).unwrap();
}

fn frame(pts_ms: u64) -> gst::Buffer {
    let mut buf = gst::Buffer::from_mut_slice(vec![90u8; 64 * 48 * 3]);
    buf.get_mut()
        .unwrap()
        .set_pts(gst::ClockTime::from_mseconds(pts_ms));
    buf
}

fn task_of(buf: &gst::Buffer) -> String {
    let meta = gst::meta::CustomMeta::from_buffer(buf, META_NAME).expect("a result");
    meta.structure().get::<String>("task").unwrap()
}

fn warnings(bus: &gst::Bus) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = bus.pop_filtered(&[gst::MessageType::Warning]) {
        if let gst::MessageView::Warning(w) = m.view() {
            out.push(w.error().to_string());
        }
    }
    out
}

#[test]
fn invalid_settings_while_playing_are_reported_once_and_the_last_valid_go_on() {
    init();
    let dir = common::tiny_model_dir().display().to_string();
    let (e, bus) = element(&dir);
    let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_src_caps_str("video/x-raw,format=RGB,width=64,height=48,framerate=30/1");
    assert_eq!(task_of(&h.push_and_pull(frame(0)).unwrap()), "<CAPTION>");
    // vqa needs a prompt: one warning, and frames keep the caption task.
    e.set_property_from_str("task", "vqa");
    for i in 1..=20 {
        assert_eq!(
            task_of(&h.push_and_pull(frame(i * 33)).unwrap()),
            "<CAPTION>"
        );
    }
    let w = warnings(&bus);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("question") || w[0].contains("prompt") || w[0].contains("text"),
        "{w:?}"
    );
    // Made valid: the new settings apply, with no further warning.
    e.set_property("prompt", "What color is it?");
    assert_eq!(task_of(&h.push_and_pull(frame(700)).unwrap()), "<VQA>");
    // Another invalid change is reported once more.
    e.set_property_from_str("task", "region-to-category");
    e.set_property("prompt", None::<&str>);
    for i in 0..5 {
        assert_eq!(
            task_of(&h.push_and_pull(frame(800 + i * 33)).unwrap()),
            "<VQA>"
        );
    }
    assert_eq!(warnings(&bus).len(), 1);
}

#[test]
fn the_debug_log_tells_what_happened_to_each_frame() {
    init();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(
        Vec::<(gst::DebugLevel, String)>::new(),
    ));
    let sink = lines.clone();
    let _log = gst::log::add_log_function(move |cat, level, _, _, _, object, msg| {
        let from_ours = object.is_some_and(|o| o.to_string().contains("florence-debug"));
        if cat.name() == "florencecaption" && from_ours {
            let text = msg.get().map(|m| m.to_string()).unwrap_or_default();
            sink.lock().unwrap().push((level, text));
        }
    });
    // Only to the function above, not to stderr (it would flood the other tests' output).
    gst::log::remove_default_log_function();
    gst::log::set_threshold_for_name("florencecaption", gst::DebugLevel::Log);
    let dir = common::tiny_model_dir().display().to_string();
    let (e, _bus) = element(&dir);
    e.set_property("name", "florence-debug");
    let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_src_caps_str("video/x-raw,format=RGB,width=64,height=48,framerate=30/1");
    h.push_and_pull(frame(0)).unwrap();
    drop(h);
    let lines = lines.lock().unwrap();
    let has = |level: gst::DebugLevel, text: &str| {
        lines.iter().any(|(l, t)| *l == level && t.contains(text))
    };
    assert!(has(gst::DebugLevel::Info, "loaded model"), "{lines:?}");
    assert!(
        has(gst::DebugLevel::Info, " ms (variant"),
        "load time: {lines:?}"
    );
    assert!(
        has(gst::DebugLevel::Debug, "analysing frame 0:00:00.000000000"),
        "{lines:?}"
    );
    assert!(
        has(
            gst::DebugLevel::Debug,
            "frame 0:00:00.000000000 analysed in"
        ),
        "{lines:?}"
    );
}

/// The error message the element posted (after a failed state change).
fn error_text(bus: &gst::Bus) -> String {
    let msg = bus
        .pop_filtered(&[gst::MessageType::Error])
        .expect("an error message");
    let gst::MessageView::Error(err) = msg.view() else {
        unreachable!()
    };
    format!("{} {:?}", err.error(), err.debug())
}

#[test]
fn the_execution_provider_is_cpu_by_default_and_others_must_be_in_the_library() {
    init();
    let dir = common::tiny_model_dir().display().to_string();
    // cpu, named or by default, captions.
    let (e, _bus) = element(&dir);
    assert_eq!(
        e.property::<Option<String>>("execution-provider")
            .as_deref(),
        Some("cpu")
    );
    e.set_property("execution-provider", "cpu");
    let mut h = gst_check::Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_src_caps_str("video/x-raw,format=RGB,width=64,height=48,framerate=30/1");
    assert_eq!(task_of(&h.push_and_pull(frame(0)).unwrap()), "<CAPTION>");
    drop(h);
    e.set_state(gst::State::Null).unwrap();

    // cuda is not in the pinned CPU-only library: the load fails naming it
    // and what the library offers.
    let (e, bus) = element(&dir);
    e.set_property("execution-provider", "cuda");
    assert_eq!(
        e.property::<Option<String>>("execution-provider")
            .as_deref(),
        Some("cuda")
    );
    assert!(e.set_state(gst::State::Ready).is_err());
    let text = error_text(&bus);
    assert!(
        text.contains("CUDAExecutionProvider") && text.contains("CPUExecutionProvider"),
        "{text}"
    );
    e.set_state(gst::State::Null).unwrap();

    // A name no provider has is refused at start with the list.
    let (e, bus) = element(&dir);
    e.set_property("execution-provider", "gpu");
    assert!(e.set_state(gst::State::Ready).is_err());
    let text = error_text(&bus);
    assert!(
        text.contains("execution-provider")
            && text.contains("\"gpu\"")
            && text.contains("cuda")
            && text.contains("openvino"),
        "{text}"
    );
    // Made valid again, the element starts.
    e.set_property("execution-provider", "CPUExecutionProvider");
    e.set_state(gst::State::Ready).unwrap();
    e.set_state(gst::State::Null).unwrap();
}
