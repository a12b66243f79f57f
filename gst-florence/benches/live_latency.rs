//! Per-buffer latency that florencecaption adds in live mode: the time from a
//! buffer entering the element's sink pad to leaving its src pad, for a live
//! 30 fps source, while the model runs on the worker thread.
//!
//! cargo bench -p gst-florence --bench live_latency [-- MODEL_DIR]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use gst::prelude::*;

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

fn run(model: &str, props: &str, format: &str, width: u32, height: u32, seconds: u64) {
    let frames = seconds * 30;
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc is-live=true pattern=ball num-buffers={frames} ! \
         video/x-raw,format={format},width={width},height={height},framerate=30/1 ! \
         florencecaption name=f model-dir={model} {props} ! fakesink sync=true"
    ))
    .expect("pipeline");
    let f = pipeline
        .downcast_ref::<gst::Bin>()
        .unwrap()
        .by_name("f")
        .unwrap();
    let entered: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let added: Arc<Mutex<Vec<(f64, Instant)>>> = Arc::default();
    {
        let entered = entered.clone();
        f.static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(b) = info.buffer() {
                    entered
                        .lock()
                        .unwrap()
                        .insert(b.pts().map_or(0, |t| t.nseconds()), Instant::now());
                }
                gst::PadProbeReturn::Ok
            });
    }
    {
        let entered = entered.clone();
        let added = added.clone();
        f.static_pad("src")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(b) = info.buffer()
                    && let Some(t) = entered
                        .lock()
                        .unwrap()
                        .remove(&b.pts().map_or(0, |t| t.nseconds()))
                {
                    added
                        .lock()
                        .unwrap()
                        .push((t.elapsed().as_secs_f64() * 1e3, Instant::now()));
                }
                gst::PadProbeReturn::Ok
            });
    }
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(seconds + 30),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("EOS");
    assert!(matches!(msg.view(), gst::MessageView::Eos(_)), "{msg:?}");
    let captions: u64 = f.property("captions-total");
    let skipped: u64 = f.property("frames-skipped");
    let inference: f64 = f.property("last-latency-ms");
    pipeline.set_state(gst::State::Null).unwrap();
    let samples = added.lock().unwrap().clone();
    let mut all: Vec<f64> = samples.iter().map(|s| s.0).collect();
    let n = all.len();
    // From the first buffer out to the last (model loading excluded).
    let wall = match (samples.first(), samples.last()) {
        (Some(a), Some(b)) => b.1.duration_since(a.1) + std::time::Duration::from_millis(33),
        _ => std::time::Duration::ZERO,
    };
    println!(
        "{format} {width}x{height}: {n} buffers in {:.2} s ({:.1} fps out), {captions} results, {skipped} passed through, last inference {inference:.0} ms",
        wall.as_secs_f64(),
        n as f64 / wall.as_secs_f64().max(1e-9),
    );
    println!(
        "    added per buffer: p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
        percentile(&mut all, 50.0),
        percentile(&mut all, 99.0),
        percentile(&mut all, 100.0),
    );
}

fn main() {
    gst::init().unwrap();
    gstflorence::plugin_register_static().unwrap();
    let model = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_else(|| {
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/fixtures/tiny-florence2"
            )
            .to_owned()
        });
    // Extra element properties, e.g. FLORENCE_BENCH_PROPS="max-new-tokens=20".
    let props = std::env::var("FLORENCE_BENCH_PROPS").unwrap_or_default();
    println!("model: {model} {props}");
    for (format, w, h) in [
        ("RGB", 640, 480),
        ("NV12", 640, 480),
        ("NV12", 1280, 720),
        ("I420", 1920, 1080),
    ] {
        run(&model, &props, format, w, h, 10);
    }
}
