//! `florenced bench`: the engine as one system of `scripts/bench.sh`.
//!
//! It loads the model once (timed), then answers one JSON request per stdin
//! line with one JSON line on stdout, so the benchmark driver can interleave
//! this process with its peers (A B C A B C ...) and keep process start and
//! model load out of the per-caption latency. Protocol, shared with the Python
//! peers in tools/bench/:
//!
//! ```text
//! <- {"ready": true, "load_ms": 812.4, "peak_rss_kb": 1234567, "version": "florenced 0.1.0",
//!     "backend": "onnx-cpu", "backend_reason": "backend=auto chose ONNX Runtime: ...",
//!     "threads": 2, "thread_pool": "process"}
//! -> {"image": "a.png", "task": "<CAPTION>", "max_new_tokens": 20, "min_new_tokens": 20, "num_beams": 1}
//! <- {"ids": [2, 0, ...], "text": "</s><s>A red ...", "result": "A red ...", "token_count": 20,
//!     "timings": {...}, "peak_rss_kb": 2345678}
//! ```
//!
//! `text` is the decoded generation and `result` its post-processed form (as
//! `florenced run` prints it): the quality table (tools/bench/quality.py)
//! scores `result` against the scene's ground truth.
//!
//! Optional request keys: `text`, `region` ([x1, y1, x2, y2]), `reuse_vision`
//! (true: a second task on the previous request's image, whose vision features
//! the engine kept, as florenced's `/v1/analyze` does; otherwise every request
//! pays for its own vision pass, as the peers do). A request that fails is
//! answered with `{"error": "..."}` and the process goes on.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use gstflorence::engine::image_io::{self, ImageLimits};
use gstflorence::engine::preprocess::RgbImage;
use gstflorence::engine::task::{Task, TaskInput};
use gstflorence::engine::{Florence, GenerationOptions, LoadOptions, Request};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BenchRequest {
    image: PathBuf,
    task: String,
    text: Option<String>,
    region: Option<[f64; 4]>,
    max_new_tokens: Option<usize>,
    min_new_tokens: Option<usize>,
    num_beams: Option<usize>,
    #[serde(default)]
    reuse_vision: bool,
}

/// Serves requests from stdin until it closes.
pub fn serve(dir: &Path, mut options: LoadOptions) -> anyhow::Result<()> {
    // The engine keeps the last image's features as florenced does; `answer`
    // forgets them before every request that does not ask to reuse them.
    options.session.vision_cache = true;
    // What `--threads` came to: the process pool's threads (0, the default)
    // or each graph's own; the driver gives its peers as many.
    let threads = options.session.effective_threads();
    let thread_pool = if options.session.intra_threads == 0 {
        "process"
    } else {
        "per graph"
    };
    let t = Instant::now();
    let florence = Florence::load(dir, options)
        .with_context(|| format!("cannot load model directory {}", dir.display()))?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut out = std::io::stdout().lock();
    let ready = json!({
        "ready": true,
        "load_ms": load_ms,
        "peak_rss_kb": status_kb("VmHWM"),
        "version": concat!("florenced ", env!("CARGO_PKG_VERSION")),
        "backend": florence.caption_backend().name(),
        "backend_reason": florence.backend_reason(),
        "execution_provider": florence.execution_provider().name(),
        "threads": threads,
        "thread_pool": thread_pool,
    });
    writeln!(out, "{ready}")?;
    out.flush()?;
    // Decoding an image file is not part of a caption's latency: each file is read once.
    let mut images: HashMap<PathBuf, RgbImage> = HashMap::new();
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let answer = answer(&florence, &mut images, &line)
            .unwrap_or_else(|e| json!({"error": format!("{e:#}")}));
        writeln!(out, "{answer}")?;
        out.flush()?;
    }
    Ok(())
}

fn answer(
    florence: &Florence,
    images: &mut HashMap<PathBuf, RgbImage>,
    line: &str,
) -> anyhow::Result<serde_json::Value> {
    let req: BenchRequest = serde_json::from_str(line).context("bad request")?;
    let task: Task = req.task.parse()?;
    if !images.contains_key(&req.image) {
        let image = image_io::read(&req.image, &ImageLimits::default())
            .with_context(|| format!("cannot read image {}", req.image.display()))?;
        images.insert(req.image.clone(), image);
    }
    let request = Request {
        task,
        input: TaskInput {
            text: req.text,
            region: req.region,
        },
        options: GenerationOptions {
            max_new_tokens: req.max_new_tokens,
            min_new_tokens: req.min_new_tokens,
            num_beams: req.num_beams,
            ..GenerationOptions::default()
        },
    };
    if !req.reuse_vision {
        // The same image comes every round: each request pays for its own vision pass.
        florence.forget_vision();
    }
    let out = florence.run(&images[&req.image], &request)?;
    Ok(json!({
        "ids": out.ids,
        "text": out.raw_text,
        "result": out.result,
        "token_count": out.token_count,
        "timings": out.timings,
        "peak_rss_kb": status_kb("VmHWM"),
    }))
}

/// A kB field of /proc/self/status (`VmHWM`: peak resident memory).
fn status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
