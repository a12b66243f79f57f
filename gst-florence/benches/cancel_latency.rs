//! How fast a cancel or a deadline stops a running inference: the time from
//! `Interrupt::cancel` (or the deadline) to `Florence::run_with` returning,
//! landing in the vision encoder, the text encoder and the decoder loop.
//!
//! cargo bench -p gst-florence --bench cancel_latency [-- MODEL_DIR]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use gstflorence::engine::SessionOptions;
use gstflorence::engine::image_io::{self, ImageLimits};
use gstflorence::engine::task::Task;
use gstflorence::engine::{EngineError, Florence, Interrupt, Request};

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let model = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map_or_else(|| root.join("tests/fixtures/tiny-florence2"), PathBuf::from);
    // The same image every run: without this, every run after the first would
    // take its vision features from the cache and never be cancelled in the
    // vision encoder.
    let options = SessionOptions {
        vision_cache: false,
        ..SessionOptions::default()
    };
    let florence = Florence::load(&model, options).expect("model");
    let image = image_io::read(
        &root.join("tests/fixtures/images/scene_640x480.png"),
        &ImageLimits::default(),
    )
    .expect("image");
    let mut req = Request::new(Task::Caption);
    req.options.max_new_tokens = Some(40);
    req.options.min_new_tokens = Some(40);
    req.options.num_beams = Some(3);
    // Stage times of an uncancelled run (after a warm-up).
    florence.run(&image, &req).expect("warm-up");
    let t = florence.run(&image, &req).expect("run").timings;
    println!(
        "model {}: preprocess {:.0} ms, vision {:.0} ms, encoder {:.0} ms, decode {:.0} ms, total {:.0} ms",
        model.display(),
        t.preprocess_ms,
        t.vision_ms,
        t.encoder_ms,
        t.decode_ms,
        t.total_ms
    );
    let stages = [
        ("vision encoder", t.preprocess_ms + t.vision_ms / 2.0),
        (
            "text encoder",
            t.preprocess_ms + t.vision_ms + t.encoder_ms / 2.0,
        ),
        (
            "decoder loop",
            t.preprocess_ms + t.vision_ms + t.encoder_ms + t.decode_ms / 2.0,
        ),
    ];
    for (stage, at_ms) in stages {
        let mut latencies = Vec::new();
        for _ in 0..5 {
            let interrupt = Interrupt::new();
            let handle = interrupt.clone();
            let canceller = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs_f64(at_ms / 1e3));
                let at = Instant::now();
                handle.cancel();
                at
            });
            let result = florence.run_with(&image, &req, &interrupt);
            let returned = Instant::now();
            let cancelled_at = canceller.join().unwrap();
            assert!(
                matches!(result, Err(EngineError::Interrupted(_))),
                "{stage}: not interrupted: {result:?}"
            );
            latencies.push(
                returned
                    .saturating_duration_since(cancelled_at)
                    .as_secs_f64()
                    * 1e3,
            );
        }
        report("cancel", stage, at_ms, &mut latencies);
        let mut latencies = Vec::new();
        for _ in 0..5 {
            let deadline = Instant::now() + Duration::from_secs_f64(at_ms / 1e3);
            let result = florence.run_with(&image, &req, &Interrupt::with_deadline(deadline));
            let returned = Instant::now();
            assert!(
                matches!(result, Err(EngineError::Interrupted(_))),
                "{stage}: not interrupted: {result:?}"
            );
            latencies.push(returned.saturating_duration_since(deadline).as_secs_f64() * 1e3);
        }
        report("deadline", stage, at_ms, &mut latencies);
    }
}

fn report(what: &str, stage: &str, at_ms: f64, latencies: &mut [f64]) {
    latencies.sort_by(f64::total_cmp);
    println!(
        "{what} in the {stage} (at {at_ms:.0} ms): returned after median {:.1} ms, max {:.1} ms",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
}
