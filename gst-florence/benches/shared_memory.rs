//! N users of one model: peak resident memory, analyses per second and
//! latency, for users sharing the registry's model (`Florence::shared`, as
//! florencecaption instances do) against users each loading their own
//! (`Florence::load`, as every instance did before the registry), on the
//! process's one ONNX Runtime thread pool (`threads` 0, the default) or with
//! every graph's own pool of one thread per physical core (`threads` N, the
//! default before the pool). Each case runs in its own process (peak RSS is
//! per process): the users caption the same image at the same time, on
//! threads, `--rounds` times each (vision encoder every time).
//!
//! cargo bench -p gst-florence --bench shared_memory [-- MODEL_DIR] [--rounds R] [--users 1,2,4]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use gstflorence::engine::cpus::default_threads;
use gstflorence::engine::image_io::{self, ImageLimits};
use gstflorence::engine::task::Task;
use gstflorence::engine::{Florence, Request, SessionOptions};

/// One case, in this process: `users` users, shared or each its own model,
/// on `threads` (0: the process pool). Prints peak kB, models, wall seconds
/// and every request's latency in ms.
fn run_case(model: &Path, users: usize, shared: bool, threads: usize, rounds: usize) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let image = image_io::read(
        &root.join("tests/fixtures/images/scene_640x480.png"),
        &ImageLimits::default(),
    )
    .expect("image");
    let options = SessionOptions {
        intra_threads: threads,
        vision_cache: false,
        ..SessionOptions::default()
    };
    let handles: Vec<Florence> = (0..users)
        .map(|_| {
            if shared {
                Florence::shared(model, options.clone()).expect("model").0
            } else {
                Florence::load(model, options.clone()).expect("model")
            }
        })
        .collect();
    // Warm-up: one run each, alone.
    for f in &handles {
        f.run(&image, &Request::new(Task::Caption)).expect("run");
    }
    let start = Instant::now();
    let latencies: Vec<f64> = std::thread::scope(|s| {
        let runs: Vec<_> = handles
            .iter()
            .map(|f| {
                let image = &image;
                s.spawn(move || {
                    (0..rounds)
                        .map(|_| {
                            let t = Instant::now();
                            f.run(image, &Request::new(Task::Caption)).expect("run");
                            t.elapsed().as_secs_f64() * 1e3
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        runs.into_iter()
            .flat_map(|r| r.join().expect("a user"))
            .collect()
    });
    let wall = start.elapsed().as_secs_f64();
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let peak_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status");
    let models: std::collections::HashSet<u64> = handles.iter().map(|f| f.model_id()).collect();
    let lat: Vec<String> = latencies.iter().map(|l| format!("{l:.2}")).collect();
    println!("{peak_kb} {} {wall} {}", models.len(), lat.join(","));
}

/// Nearest-rank percentile.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).map(String::as_str)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // A child: --case USERS shared|own THREADS ROUNDS MODEL
    if let [flag, users, how, threads, rounds, model] = &args[..]
        && flag == "--case"
    {
        run_case(
            Path::new(model),
            users.parse().expect("users"),
            how == "shared",
            threads.parse().expect("threads"),
            rounds.parse().expect("rounds"),
        );
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let rounds: usize = flag(&args, "--rounds").map_or(20, |r| r.parse().expect("--rounds N"));
    let users: Vec<usize> = flag(&args, "--users")
        .unwrap_or("1,2,4")
        .split(',')
        .map(|u| u.parse().expect("--users 1,2,4"))
        .collect();
    let values: Vec<&str> = ["--rounds", "--users"]
        .iter()
        .filter_map(|f| flag(&args, f))
        .collect();
    let model = args
        .iter()
        .find(|a| !a.starts_with('-') && !values.contains(&a.as_str()))
        .map_or_else(|| root.join("tests/fixtures/tiny-florence2"), PathBuf::from);
    let exe = std::env::current_exe().expect("this benchmark's path");
    let own_threads = default_threads();
    println!(
        "model {}, {rounds} <CAPTION> per user, pool: {own_threads} threads for the process; \
         own: {own_threads} threads per graph",
        model.display()
    );
    println!("| users | model | threads | models | peak RSS | analyses/s | per user | p50 | p99 |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for &n in &users {
        for (how, threads) in [("shared", 0), ("shared", own_threads), ("own", own_threads)] {
            let out = Command::new(&exe)
                .args(["--case", &n.to_string(), how])
                .args([threads.to_string(), rounds.to_string()])
                .arg(&model)
                .output()
                .expect("run a case");
            let text = String::from_utf8_lossy(&out.stdout);
            let fields: Vec<&str> = text.split_whitespace().collect();
            let [peak_kb, models, wall, lat] = fields[..] else {
                panic!(
                    "case {n} {how} {threads} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            };
            let mb = peak_kb.parse::<f64>().unwrap_or(f64::NAN) / 1024.0;
            let wall: f64 = wall.parse().unwrap_or(f64::NAN);
            let mut lat: Vec<f64> = lat.split(',').filter_map(|l| l.parse().ok()).collect();
            lat.sort_by(f64::total_cmp);
            let rate = lat.len() as f64 / wall;
            let pool = if threads == 0 {
                "pool".to_owned()
            } else {
                format!("{threads}/graph")
            };
            println!(
                "| {n} | {how} | {pool} | {models} | {mb:.1} MB | {rate:.2} | {:.2} | {:.1} ms | {:.1} ms |",
                rate / n as f64,
                percentile(&lat, 50.0),
                percentile(&lat, 99.0),
            );
        }
    }
}
