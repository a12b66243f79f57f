//! florencecaption in running pipelines: EOS, latency and QoS, as GStreamer
//! applications rely on them (tiny model, real pipelines).

mod common;

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Mutex, Once};
use std::time::Duration;

use gst::prelude::*;
use gstflorence::florencecaption::MESSAGE_NAME;

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

/// Hang guard for waits on events that must come.
const GUARD: Duration = Duration::from_secs(60);

fn child<T: IsA<gst::Element>>(pipeline: &gst::Element, name: &str) -> T {
    pipeline
        .downcast_ref::<gst::Bin>()
        .unwrap()
        .by_name(name)
        .unwrap_or_else(|| panic!("no element {name}"))
        .downcast::<T>()
        .unwrap()
}

/// What a bus sync handler saw, in order.
#[derive(Debug, PartialEq)]
enum Seen {
    Caption,
    Eos,
    Error(String),
}

/// Installs a sync handler on `pipeline`'s bus that reports captions, EOS and
/// errors in the order they were posted and holds the element's worker (the
/// thread posting the caption) until `release` gets a message, when `hold` is set.
fn watch(pipeline: &gst::Element, hold: bool) -> (Receiver<Seen>, Sender<()>) {
    let (seen_tx, seen_rx) = channel();
    let (release_tx, release_rx) = channel::<()>();
    let release_rx = Mutex::new(release_rx);
    pipeline.bus().unwrap().set_sync_handler(move |_, msg| {
        match msg.view() {
            gst::MessageView::Element(e)
                if e.structure().is_some_and(|s| s.name() == MESSAGE_NAME) =>
            {
                let _ = seen_tx.send(Seen::Caption);
                if hold {
                    let _ = release_rx.lock().unwrap().recv();
                }
            }
            gst::MessageView::Eos(_) => {
                let _ = seen_tx.send(Seen::Eos);
            }
            gst::MessageView::Error(e) => {
                let _ = seen_tx.send(Seen::Error(e.error().to_string()));
            }
            _ => {}
        }
        gst::BusSyncReply::Drop
    });
    (seen_rx, release_tx)
}

/// Messages until EOS (or an error, which fails the test).
fn until_eos(seen: &Receiver<Seen>) -> Vec<Seen> {
    let mut out = Vec::new();
    loop {
        let s = seen.recv_timeout(GUARD).expect("no EOS");
        match s {
            Seen::Eos => return out,
            Seen::Error(e) => panic!("pipeline error: {e}"),
            other => out.push(other),
        }
    }
}

#[test]
fn live_mode_delivers_the_analysis_in_flight_at_eos() {
    init();
    // A short file played as fast as it goes: all 150 frames pass while the
    // first analysis runs; its result must still come out before EOS.
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=150 pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 ! \
         florencecaption name=f model-dir={} threads=1 num-beams=1 ! fakesink sync=false \
         f.text_src ! queue ! appsink name=t sync=false wait-on-eos=false",
        model_dir()
    ))
    .unwrap();
    let (seen, _release) = watch(&pipeline, false);
    pipeline.set_state(gst::State::Playing).unwrap();
    let captions = until_eos(&seen);
    assert!(!captions.is_empty(), "no caption from 150 frames");
    let t: gst_app::AppSink = child(&pipeline, "t");
    let text = t
        .try_pull_sample(gst::ClockTime::ZERO)
        .expect("the caption on text_src before EOS");
    assert!(text.buffer().unwrap().size() > 0);
    pipeline.set_state(gst::State::Null).unwrap();
}

/// videotestsrc num-buffers=3 into a live-mode element whose worker the bus
/// handler holds on each result until released.
fn held_at_eos(drain_timeout_ms: u32) -> (gst::Element, Receiver<Seen>, Sender<()>) {
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=3 ! video/x-raw,width=320,height=240,framerate=30/1 ! \
         florencecaption name=f model-dir={} threads=1 num-beams=1 drain-timeout={drain_timeout_ms} ! \
         fakesink sync=false f.text_src ! queue ! appsink name=t sync=false wait-on-eos=false",
        model_dir()
    ))
    .unwrap();
    let (seen, release) = watch(&pipeline, true);
    pipeline.set_state(gst::State::Playing).unwrap();
    (pipeline, seen, release)
}

#[test]
fn eos_waits_for_the_result_in_flight() {
    init();
    // The worker is held while publishing: every frame and EOS reach the
    // element meanwhile. EOS must wait for it: once released, the text comes
    // out on text_src before EOS does.
    let (pipeline, seen, release) = held_at_eos(30_000);
    // EOS cannot overtake the result: the first thing posted is the caption.
    assert_eq!(seen.recv_timeout(GUARD).unwrap(), Seen::Caption);
    drop(release);
    // (A frame that reached the element after the worker was done may have
    // been analysed too.)
    assert!(until_eos(&seen).iter().all(|s| *s == Seen::Caption));
    let t: gst_app::AppSink = child(&pipeline, "t");
    let text = t.try_pull_sample(gst::ClockTime::ZERO);
    assert!(
        text.is_some(),
        "the held result did not reach text_src before EOS"
    );
    pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn drain_timeout_bounds_the_wait_at_eos() {
    init();
    // drain-timeout=0: EOS goes on while the worker is held (or its analysis
    // is cancelled): it never waits for a release.
    let (pipeline, seen, release) = held_at_eos(0);
    until_eos(&seen);
    drop(release);
    pipeline.set_state(gst::State::Null).unwrap();
}
