//! florencecaption in running pipelines: EOS, latency and QoS, as GStreamer
//! applications rely on them (tiny model, real pipelines).

mod common;

use common::{child, init_element as init, tiny_model_arg as model_dir};

use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use gst::prelude::*;
use gstflorence::florencecaption::MESSAGE_NAME;

/// Hang guard for waits on events that must come.
const GUARD: Duration = Duration::from_secs(60);

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

/// Runs `pipeline` to EOS as an application does: a latency message makes it
/// redistribute the latency (as gst-launch-1.0 does). Returns how many latency
/// messages `element` posted.
fn play_to_eos(pipeline: &gst::Element, element: &str) -> usize {
    let bin = pipeline.downcast_ref::<gst::Bin>().unwrap();
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut latency_messages = 0;
    loop {
        let msg = bus
            .timed_pop(gst::ClockTime::from_nseconds(GUARD.as_nanos() as u64))
            .expect("no EOS");
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("error: {} ({:?})", e.error(), e.debug()),
            gst::MessageView::Latency(_) => {
                if msg.src().is_some_and(|s| s.name() == element) {
                    latency_messages += 1;
                }
                let _ = bin.recalculate_latency();
            }
            _ => {}
        }
    }
    latency_messages
}

/// (rendered, dropped) from a sink's `stats`.
fn shown(pipeline: &gst::Element, sink: &str) -> (u64, u64) {
    let sink: gst::Element = child(pipeline, sink);
    let stats = sink.property::<gst::Structure>("stats");
    (
        stats.get::<u64>("rendered").unwrap(),
        stats.get::<u64>("dropped").unwrap(),
    )
}

/// (min, max) of a LATENCY query on `pad`.
fn query_latency(pad: &gst::Pad) -> (gst::ClockTime, Option<gst::ClockTime>) {
    let mut q = gst::query::Latency::new();
    assert!(pad.query(&mut q), "LATENCY query on {}", pad.name());
    let (live, min, max) = q.result();
    assert!(live);
    (min, max)
}

/// A live 2 fps source into florencecaption with `props`, its video and its
/// text each through a queue (the sink waits out the latency on its own
/// thread, as a display branch does) into a synchronised sink that drops
/// buffers over 20 ms late (as video sinks do).
fn synced(props: &str, frames: u32) -> gst::Element {
    gst::parse::launch(&format!(
        "videotestsrc is-live=true num-buffers={frames} pattern=ball ! \
         video/x-raw,width=320,height=240,framerate=2/1 ! identity name=up ! \
         florencecaption name=f model-dir={} threads=1 num-beams=1 {props} ! \
         queue max-size-buffers=0 max-size-bytes=0 max-size-time=0 ! \
         fakesink name=v sync=true max-lateness=20000000 \
         f.text_src ! queue ! fakesink name=t sync=true max-lateness=20000000",
        model_dir()
    ))
    .unwrap()
}

#[test]
fn a_synced_sink_shows_every_frame_and_text_within_the_latency() {
    init();
    // A configured bound far above the tiny model's analysis time (a hang
    // guard's margin, not a speed claim): every frame and every text is on
    // time for a sink that waits that long.
    for mode in ["every-frame", "live"] {
        let pipeline = synced(&format!("mode={mode} latency=6000"), 6);
        play_to_eos(&pipeline, "f");
        let (rendered, dropped) = shown(&pipeline, "v");
        assert_eq!(
            (rendered, dropped),
            (6, 0),
            "{mode}: video frames shown, dropped"
        );
        let (rendered, dropped) = shown(&pipeline, "t");
        assert!(rendered >= 1, "{mode}: no text shown");
        assert_eq!(dropped, 0, "{mode}: texts dropped as late");
        pipeline.set_state(gst::State::Null).unwrap();
    }
}

#[test]
fn latency_query_adds_the_elements_latency_to_upstreams() {
    init();
    let second = gst::ClockTime::SECOND;
    for (mode, video_adds) in [("every-frame", true), ("live", false)] {
        let pipeline = synced(&format!("mode={mode} latency=1000"), 1);
        pipeline.set_state(gst::State::Playing).unwrap();
        let (done, _, _) = pipeline.state(gst::ClockTime::from_seconds(60));
        done.unwrap();
        let f: gst::Element = child(&pipeline, "f");
        let up: gst::Element = child(&pipeline, "up");
        let (up_min, up_max) = query_latency(&up.static_pad("src").unwrap());
        let (min, max) = query_latency(&f.static_pad("src").unwrap());
        let own = if video_adds {
            second
        } else {
            gst::ClockTime::ZERO
        };
        assert_eq!(
            (min, max),
            (up_min + own, up_max.map(|m| m + own)),
            "{mode} src"
        );
        let (min, max) = query_latency(&f.static_pad("text_src").unwrap());
        assert_eq!(
            (min, max),
            (up_min + second, up_max.map(|m| m + second)),
            "{mode} text_src"
        );
        pipeline.set_state(gst::State::Null).unwrap();
    }
}

#[test]
fn measured_latency_is_announced_and_reported() {
    init();
    // latency=0 (default): the element measures its analyses, posts a latency
    // message when the estimate grows, and reports at least the last one.
    let pipeline = synced("mode=every-frame", 10);
    assert!(play_to_eos(&pipeline, "f") >= 1, "no latency message");
    let f: gst::Element = child(&pipeline, "f");
    let up: gst::Element = child(&pipeline, "up");
    pipeline.set_state(gst::State::Paused).unwrap();
    let (up_min, _) = query_latency(&up.static_pad("src").unwrap());
    let (min, _) = query_latency(&f.static_pad("src").unwrap());
    let (text_min, _) = query_latency(&f.static_pad("text_src").unwrap());
    let last = gst::ClockTime::from_nseconds((f.property::<f64>("last-latency-ms") * 1e6) as u64);
    assert!(
        min >= up_min + last,
        "src {min} < upstream {up_min} + last analysis {last}"
    );
    assert_eq!(text_min, min);
    pipeline.set_state(gst::State::Null).unwrap();
}

/// A florencecaption on the tiny model with short greedy answers and `props`
/// (gst-launch syntax).
fn florencecaption(props: &str) -> gst::Element {
    let e = gst::ElementFactory::make("florencecaption")
        .property("model-dir", model_dir())
        .property("threads", 1u32)
        .property("num-beams", 1u32)
        .property("max-new-tokens", 4u32)
        .build()
        .unwrap();
    for prop in props.split_whitespace() {
        let (name, value) = prop.split_once('=').unwrap();
        e.set_property_from_str(name, value);
    }
    e
}

/// An every-frame harness on 64x48 RGB frames; the element's bus is returned
/// for its QoS messages.
fn every_frame_harness(props: &str) -> (gst_check::Harness, gst::Element, gst::Bus) {
    let element = florencecaption(&format!("mode=every-frame {props}"));
    let mut h = gst_check::Harness::with_element(&element, Some("sink"), Some("src"));
    h.set_src_caps_str("video/x-raw,format=RGB,width=64,height=48,framerate=10/1");
    let bus = gst::Bus::new();
    element.set_bus(Some(&bus));
    (h, element, bus)
}

fn frame(pts_ms: u64, request: bool) -> gst::Buffer {
    let mut buf = gst::Buffer::from_mut_slice(vec![128u8; 64 * 48 * 3]);
    let b = buf.get_mut().unwrap();
    b.set_pts(gst::ClockTime::from_mseconds(pts_ms));
    b.set_duration(gst::ClockTime::from_mseconds(100));
    if request {
        let mut meta =
            gst::meta::CustomMeta::add(b, gstflorence::florencecaption::REQUEST_META_NAME).unwrap();
        meta.mut_structure().set("id", "asked");
    }
    buf
}

fn analysed(buf: &gst::Buffer) -> bool {
    gst::meta::CustomMeta::from_buffer(buf, gstflorence::florencecaption::META_NAME).is_ok()
}

/// A QoS event from downstream: the frame at `timestamp_ms` was `late_ms` late.
fn qos_event(timestamp_ms: u64, late_ms: i64) -> gst::Event {
    gst::event::Qos::new(
        gst::QOSType::Underflow,
        1.0,
        late_ms * 1_000_000,
        gst::ClockTime::from_mseconds(timestamp_ms),
    )
}

fn assert_qos_went_upstream(h: &mut gst_check::Harness) {
    while let Ok(event) = h.pull_upstream_event() {
        if event.type_() == gst::EventType::Qos {
            return;
        }
    }
    panic!("the QoS event did not go upstream");
}

#[test]
fn every_frame_mode_skips_the_analysis_of_late_frames() {
    init();
    let (mut h, element, bus) = every_frame_harness("");
    assert!(element.property::<bool>("qos"), "qos is on by default");
    assert!(analysed(&h.push_and_pull(frame(0, false)).unwrap()));
    // The sink rendered the frame at 0 ms 500 ms late: frames up to 1 s
    // (twice the lateness, to catch up) are not worth analysing.
    assert!(h.push_upstream_event(qos_event(0, 500)));
    assert_qos_went_upstream(&mut h);
    let out = h.push_and_pull(frame(500, false)).unwrap();
    assert!(!analysed(&out), "a late frame passes unanalysed");
    assert_eq!(out.pts(), Some(gst::ClockTime::from_mseconds(500)));
    assert_eq!(element.property::<u64>("frames-skipped"), 1);
    let msg = bus
        .pop_filtered(&[gst::MessageType::Qos])
        .expect("a QoS message for the skipped frame");
    let gst::MessageView::Qos(q) = msg.view() else {
        unreachable!()
    };
    let (_, running_time, _, timestamp, _) = q.get();
    assert_eq!(running_time, Some(gst::ClockTime::from_mseconds(500)));
    assert_eq!(timestamp, Some(gst::ClockTime::from_mseconds(500)));
    // A buffer with its own request is analysed however late: an application waits for it.
    assert!(analysed(&h.push_and_pull(frame(600, true)).unwrap()));
    // Frames after the earliest time are analysed again.
    assert!(analysed(&h.push_and_pull(frame(1100, false)).unwrap()));
    // qos=false: every frame is analysed.
    element.set_property("qos", false);
    assert!(analysed(&h.push_and_pull(frame(700, false)).unwrap()));
    assert_eq!(element.property::<u64>("frames-skipped"), 1);
}

#[test]
fn live_mode_ignores_qos_for_analysis() {
    init();
    let element = florencecaption("");
    let mut h = gst_check::Harness::with_element(&element, Some("sink"), Some("src"));
    h.set_src_caps_str("video/x-raw,format=RGB,width=64,height=48,framerate=10/1");
    let (posted_tx, posted_rx) = channel::<()>();
    common::on_each_result(&element, move || {
        let _ = posted_tx.send(());
    });
    h.push_and_pull(frame(0, false)).unwrap();
    posted_rx.recv_timeout(GUARD).expect("a first result");
    // Everything up to 10 s is late for the sink.
    assert!(h.push_upstream_event(qos_event(0, 5_000)));
    assert_qos_went_upstream(&mut h);
    // The worker still takes such a frame as soon as it is free.
    let skipped = || element.property::<u64>("frames-skipped");
    let mut pts = 100;
    loop {
        let before = skipped();
        h.push_and_pull(frame(pts, false)).unwrap();
        if skipped() == before {
            break;
        }
        pts += 1;
        assert!(pts < 10_000, "no frame was analysed");
        std::thread::yield_now();
    }
    posted_rx
        .recv_timeout(GUARD)
        .expect("a result for a late frame");
}
