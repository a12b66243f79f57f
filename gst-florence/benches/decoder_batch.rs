//! One decoder step of the batchable decoder for batches of 1, 2, 4 requests
//! against the merged decoder's step (one request), on one model directory
//! that has both (`tools/export/add_batched.py` adds the batchable one).
//!
//! Every request is a `<CAPTION>` of the same fixture image forced to
//! `--tokens` new tokens (min = max), so every step of a batch has all its
//! rows; a step's time is the wall time of everything between two tokens
//! (embedding, the decoder run, building its padded inputs, the search's
//! bookkeeping), the first step excluded, median of `--rounds` rounds that
//! each run every case once.
//!
//! cargo bench -p gst-florence --bench decoder_batch [-- MODEL_DIR] [--variant V] [--tokens N] [--batches 1,2,4] [--threads T (0: the process pool)] [--rounds R]
//!
//! `--variant` (`_int8mm`, ...): that variant's merged decoder against its
//! batchable pair.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use florence_test_support::model_copies::link_tree;
use florence_test_support::scratch::Scratch;
use gstflorence::engine::backend::{Backend, Job};
use gstflorence::engine::generate::DecodeParams;
use gstflorence::engine::image_io::{self, ImageLimits};
use gstflorence::engine::onnx::OnnxBackend;
use gstflorence::engine::onnx::signature::Graph;
use gstflorence::engine::preprocess::RgbImage;
use gstflorence::engine::shared_vision::SharedVision;
use gstflorence::engine::task::{Task, TaskInput};
use gstflorence::engine::vision_cache::VisionCache;
use gstflorence::engine::{Florence, GenerationOptions, Interrupt, SessionOptions};

struct Args {
    model: PathBuf,
    variant: String,
    tokens: usize,
    batches: Vec<usize>,
    threads: usize,
    rounds: usize,
}

fn args() -> Args {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut a = Args {
        model: root.join("tests/fixtures/tiny-florence2"),
        variant: String::new(),
        tokens: 32,
        batches: vec![1, 2, 4],
        threads: 0,
        rounds: 5,
    };
    let mut it = std::env::args().skip(1).filter(|s| s != "--bench");
    while let Some(arg) = it.next() {
        let mut value = || it.next().expect("a value after the flag");
        match arg.as_str() {
            "--tokens" => a.tokens = value().parse().expect("--tokens N"),
            "--variant" => a.variant = value(),
            "--threads" => a.threads = value().parse().expect("--threads T"),
            "--rounds" => a.rounds = value().parse().expect("--rounds R"),
            "--batches" => {
                a.batches = value()
                    .split(',')
                    .map(|b| b.parse().expect("--batches 1,2,4"))
                    .collect()
            }
            // Absolute: the merged decoder's copy links to its files.
            dir => a.model = std::fs::canonicalize(dir).expect("the model directory"),
        }
    }
    a
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// What every request of the benchmark shares.
struct Setup {
    image: RgbImage,
    prompt: Vec<u32>,
    params: DecodeParams,
    vision: VisionCache,
    shared: Arc<SharedVision>,
}

impl Setup {
    fn job(&self) -> Job<'_> {
        Job {
            image: &self.image,
            prompt: &self.prompt,
            params: &self.params,
            vision: &self.vision,
            shared_vision: &self.shared,
            // Batches here are formed directly, not through the scheduler.
            decode_slowdown: gstflorence::engine::DEFAULT_DECODE_SLOWDOWN,
        }
    }
}

/// Milliseconds per step after the first, for one request alone.
fn alone(backend: &OnnxBackend, setup: &Setup) -> f64 {
    let out = backend
        .generate(setup.job(), &Interrupt::new())
        .expect("run");
    assert_eq!(out.decoded.ids.len(), setup.params.max_new_tokens + 1);
    out.timings.per_token_ms
}

/// Milliseconds per step after the first, for `n` requests decoding together.
fn together(backend: &OnnxBackend, setup: &Setup, n: usize) -> f64 {
    let interrupt = Interrupt::new();
    let mut batch = backend.batch::<usize>().expect("the batchable decoder");
    for k in 0..n {
        batch.join(k, backend.admit(&setup.job(), &interrupt).expect("admit"));
    }
    let mut steps = Vec::new();
    while !batch.is_empty() {
        let t = Instant::now();
        for left in batch.step() {
            let decoded = left.result.expect("step");
            assert_eq!(decoded.ids.len(), setup.params.max_new_tokens + 1);
        }
        steps.push(t.elapsed().as_secs_f64() * 1e3);
    }
    steps[1..].iter().sum::<f64>() / (steps.len() - 1) as f64
}

fn main() {
    let a = args();
    let options = SessionOptions {
        intra_threads: a.threads,
        variant: a.variant.clone(),
        vision_cache: false,
        graph_cache: None,
        ..SessionOptions::default()
    };
    let florence = Florence::load(&a.model, options.clone()).expect("model");
    let batched = OnnxBackend::open(florence.files(), &options).expect("model");
    // The merged decoder: the same directory without the batchable graphs.
    let scratch = Scratch::new("decoder-batch");
    let mut merged_files = florence.files().clone();
    merged_files.dir = scratch.path().join("merged");
    link_tree(&a.model, &merged_files.dir);
    for g in Graph::BATCHED {
        std::fs::remove_file(merged_files.dir.join("onnx").join(format!(
            "{}{}.onnx",
            g.stem(),
            a.variant
        )))
        .expect("the batchable decoder's graphs in the model directory");
    }
    let merged = OnnxBackend::open(&merged_files, &options).expect("model");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let image = image_io::read(
        &root.join("tests/fixtures/images/scene_640x480.png"),
        &ImageLimits::default(),
    )
    .expect("image");
    let prompt = florence
        .prompt_ids(
            Task::Caption,
            &TaskInput::default(),
            image.width,
            image.height,
        )
        .expect("prompt");
    let params = florence
        .decode_params(&GenerationOptions {
            max_new_tokens: Some(a.tokens),
            min_new_tokens: Some(a.tokens),
            num_beams: Some(1),
            ..GenerationOptions::default()
        })
        .expect("params");
    let setup = Setup {
        image,
        prompt,
        params,
        vision: VisionCache::new(false),
        shared: Arc::new(SharedVision::default()),
    };
    // Warm-up: each path once.
    alone(&merged, &setup);
    alone(&batched, &setup);
    // Rounds interleave the cases, so that a change in the machine's load
    // falls on all of them.
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); 1 + a.batches.len()];
    for _ in 0..a.rounds {
        times[0].push(alone(&merged, &setup));
        for (i, &n) in a.batches.iter().enumerate() {
            times[1 + i].push(if n == 1 {
                alone(&batched, &setup)
            } else {
                together(&batched, &setup, n)
            });
        }
    }
    let base = median(times[0].clone());
    println!(
        "decoder step, {} {}, {} threads, {} new tokens per request, median of {} rounds",
        display(&a.model),
        if a.variant.is_empty() {
            "fp32"
        } else {
            &a.variant
        },
        threads(a.threads),
        a.tokens,
        a.rounds
    );
    println!("| decoder | requests | ms per step | ms per token | tokens/s | vs merged |");
    println!("|---|---:|---:|---:|---:|---:|");
    let row = |name: &str, n: usize, ms: f64| {
        println!(
            "| {name} | {n} | {ms:.2} | {:.2} | {:.0} | {:.2}x |",
            ms / n as f64,
            1e3 * n as f64 / ms,
            base * n as f64 / ms
        );
    };
    row("merged", 1, base);
    for (i, &n) in a.batches.iter().enumerate() {
        row("batched", n, median(times[1 + i].clone()));
    }
}

fn threads(n: usize) -> String {
    match n {
        0 => "the process pool's".into(),
        n => format!("{n} own"),
    }
}

fn display(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}
