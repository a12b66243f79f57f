//! `text_src` and GAP events: a stream whose frames are all dropped upstream
//! (identity drop-probability=1.0 turns each into a GAP) must still preroll a
//! sink on the text branch and reach EOS, in both modes, as prerolling sinks,
//! subtitle encoders and muxers rely on.

mod common;

use common::{child, init_element as init, tiny_model_arg as model_dir};
use gst::prelude::*;

/// Hang guard for waits on events that must come.
const GUARD: gst::ClockTime = gst::ClockTime::from_seconds(30);

/// The pipeline: every frame dropped before florencecaption.
fn all_dropped(mode: &str) -> gst::Element {
    gst::parse::launch(&format!(
        "videotestsrc num-buffers=60 ! video/x-raw,width=320,height=240 ! \
         identity drop-probability=1.0 ! \
         florencecaption name=f model-dir={} threads=1 num-beams=1 mode={mode} ! \
         fakesink name=v f.text_src ! queue ! appsink name=t sync=true",
        model_dir()
    ))
    .unwrap()
}

/// The pipeline's messages until `done` says so; an error fails the test.
fn pop_until(pipeline: &gst::Element, done: impl Fn(&gst::Message) -> bool) {
    let bus = pipeline.bus().unwrap();
    loop {
        let msg = bus.timed_pop(GUARD).expect("pipeline stalled");
        if let gst::MessageView::Error(e) = msg.view() {
            panic!("error: {} ({:?})", e.error(), e.debug());
        }
        if done(&msg) {
            return;
        }
    }
}

#[test]
fn gaps_reach_text_src_so_its_sink_prerolls_and_eos_comes() {
    init();
    for mode in ["live", "every-frame"] {
        let pipeline = all_dropped(mode);
        // PAUSED completes only once both sinks have prerolled; the text sink
        // prerolls on a GAP, the only thing that can reach it here.
        assert_eq!(
            pipeline.set_state(gst::State::Paused).unwrap(),
            gst::StateChangeSuccess::Async,
            "{mode}"
        );
        let (done, state, _) = pipeline.state(GUARD);
        assert_eq!(
            done,
            Ok(gst::StateChangeSuccess::Success),
            "{mode}: no preroll"
        );
        assert_eq!(state, gst::State::Paused, "{mode}");
        pipeline.set_state(gst::State::Playing).unwrap();
        pop_until(&pipeline, |m| matches!(m.view(), gst::MessageView::Eos(_)));
        // The text branch saw the stream (its caps) and no text.
        let text: gst_app::AppSink = child(&pipeline, "t");
        assert!(text.is_eos(), "{mode}");
        let caps = text.static_pad("sink").unwrap().current_caps();
        assert!(
            caps.is_some_and(|c| c.structure(0).is_some_and(|s| s.name() == "text/x-raw")),
            "{mode}"
        );
        assert!(
            text.try_pull_sample(gst::ClockTime::ZERO).is_none(),
            "{mode}: text without a frame"
        );
        pipeline.set_state(gst::State::Null).unwrap();
    }
}
