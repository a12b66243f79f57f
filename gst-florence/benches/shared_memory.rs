//! Peak resident memory of N users of one model: one user, two users sharing
//! the registry's model (`Florence::shared`, as florencecaption instances do),
//! and two users each loading their own (`Florence::load`, as every instance
//! did before the registry). Each case runs in its own process (peak RSS is
//! per process): the users caption the same image at the same time, on
//! threads, three times each.
//!
//! cargo bench -p gst-florence --bench shared_memory [-- MODEL_DIR]

use std::path::{Path, PathBuf};
use std::process::Command;

use gstflorence::engine::image_io::{self, ImageLimits};
use gstflorence::engine::task::Task;
use gstflorence::engine::{Florence, Request, SessionOptions};

/// One case, in this process: `users` users, shared or each its own model.
fn run_case(model: &Path, users: usize, shared: bool) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let image = image_io::read(
        &root.join("tests/fixtures/images/scene_640x480.png"),
        &ImageLimits::default(),
    )
    .expect("image");
    let options = SessionOptions {
        intra_threads: 1,
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
    std::thread::scope(|s| {
        for f in &handles {
            let image = &image;
            s.spawn(move || {
                for _ in 0..3 {
                    f.forget_vision();
                    f.run(image, &Request::new(Task::Caption)).expect("run");
                }
            });
        }
    });
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let peak_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status");
    let models: std::collections::HashSet<u64> = handles.iter().map(|f| f.model_id()).collect();
    println!("{peak_kb} {}", models.len());
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // A child: --case USERS shared|own MODEL
    if let [flag, users, how, model] = &args[..]
        && flag == "--case"
    {
        run_case(
            Path::new(model),
            users.parse().expect("users"),
            how == "shared",
        );
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let model = args
        .iter()
        .find(|a| !a.starts_with('-'))
        .map_or_else(|| root.join("tests/fixtures/tiny-florence2"), PathBuf::from);
    let exe = std::env::current_exe().expect("this benchmark's path");
    println!("model {}", model.display());
    println!("| users | models | peak RSS |");
    println!("|---|---|---|");
    for (users, how) in [(1, "shared"), (2, "shared"), (2, "own")] {
        let out = Command::new(&exe)
            .args(["--case", &users.to_string(), how])
            .arg(&model)
            .output()
            .expect("run a case");
        let text = String::from_utf8_lossy(&out.stdout);
        let Some((peak_kb, models)) = text.trim().split_once(' ') else {
            panic!(
                "case {users} {how} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let mb = peak_kb.parse::<f64>().unwrap_or(f64::NAN) / 1024.0;
        println!("| {users} ({how}) | {models} | {mb:.1} MB |");
    }
}
