//! Faults around the model's files, beyond lifecycle.rs (which covers a model
//! directory renamed away and a graph replaced by a truncated copy, each
//! while serving and recovered by SIGHUP, and a SIGKILL during an inference):
//!
//! - a SIGKILL while the first load writes the optimised-graph cache: the
//!   restarted daemon is ready, answers as a daemon without the cache does,
//!   and no scratch directory of the dead loader is kept or used;
//! - a graph truncated in place (same file, same inode) under a daemon that
//!   mapped its weights from the cache: requests go on with the same answers
//!   (the model is in memory), /health stays 200 until a reload tries the
//!   file, then carries why; restored in place, SIGHUP recovers.
//!
//! Waits are for events (a directory entry, a log line, /health); durations
//! are hang guards only.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::scratch::Scratch;
use common::*;
use serde_json::{Value, json};

const HANG_GUARD: Duration = Duration::from_secs(60);
/// Attempts at killing the first load while it writes a cache entry (one can
/// lose the race: the entry published before the signal lands).
const KILL_ATTEMPTS: usize = 20;
const DECODER: &str = "onnx/decoder_model_merged.onnx";

fn caption_body() -> Value {
    json!({"image": b64(&fixture_png("scene_640x480")), "num_beams": 1, "max_length": 20})
}

/// The caption's answer without its timings.
fn answer(d: &Daemon) -> Value {
    let r = d.post_json("/v1/caption", &caption_body());
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    json!({"caption": j["caption"], "token_count": j["token_count"]})
}

/// The answer of a daemon that uses no graph cache.
fn answer_without_cache() -> Value {
    answer(&Spawn::new().env("FLORENCE_GRAPH_CACHE", "").ready())
}

/// Names in the cache directory: (entries, scratch directories).
fn cache_contents(cache: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let mut all: Vec<PathBuf> = std::fs::read_dir(cache)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    all.sort();
    all.into_iter().partition(|p| {
        !p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".partial-")
    })
}

fn assert_complete_entries(cache: &Path) {
    let (entries, partial) = cache_contents(cache);
    assert!(partial.is_empty(), "scratch directories left: {partial:?}");
    // The graphs the tiny model loads: the vision encoder, the embedding, the
    // text encoder and the batchable decoder's two (instead of the merged decoder).
    assert_eq!(entries.len(), 5, "one entry per graph: {entries:?}");
    for e in &entries {
        assert!(
            e.join("graph.onnx").is_file() && e.join("graph.data").is_file(),
            "{e:?}"
        );
    }
}

#[test]
fn killed_while_saving_the_graph_cache_it_starts_again_with_nothing_partial() {
    let expected = answer_without_cache();
    let scratch = Scratch::new("cache-kill");
    let cache = scratch.0.join("graphs");
    let daemon = || Spawn::new().env("FLORENCE_GRAPH_CACHE", &cache.display().to_string());

    // Killed as soon as a scratch directory holds its loader's lock, that is
    // while ONNX Runtime writes the entry; kept only if the kill landed before
    // that entry was published. (A loader killed in the microseconds between
    // creating its directory and locking it leaves an empty directory that
    // sweepers remove by age, as graph_cache's unit test shows: which of
    // the two a kill hits is chance, so this waits for the lock.)
    let mut killed_mid_save = false;
    for _ in 0..KILL_ATTEMPTS {
        let _ = std::fs::remove_dir_all(&cache);
        let mut d = daemon().start();
        let start = Instant::now();
        while !cache_contents(&cache)
            .1
            .iter()
            .any(|p| p.join("lock").exists())
        {
            assert!(start.elapsed() < HANG_GUARD, "no cache entry was written");
            std::thread::yield_now();
        }
        d.signal(libc::SIGKILL);
        d.wait_exit(HANG_GUARD);
        if !cache_contents(&cache).1.is_empty() {
            killed_mid_save = true;
            break;
        }
    }
    assert!(killed_mid_save, "no kill landed while an entry was written");

    // Restarted: ready, the same answer, the dead loader's scratch gone.
    let mut d = daemon().ready();
    assert_eq!(answer(&d), expected);
    assert_complete_entries(&cache);

    // Killed during an inference, restarted from the complete cache.
    let body = json!({"image": b64(&fixture_png("scene_1024x576")),
        "max_length": 200, "min_length": 200, "num_beams": 4})
    .to_string();
    let addr = d.addr;
    let client = try_post_caption_async(addr, body);
    let start = Instant::now();
    while d.get("/metrics").json()["inferences_running"] != 1 {
        assert!(start.elapsed() < HANG_GUARD, "the inference never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    d.signal(libc::SIGKILL);
    d.wait_exit(HANG_GUARD);
    assert!(
        client.join().unwrap().is_err(),
        "a killed daemon answered its client"
    );
    let d = daemon().ready();
    assert_eq!(answer(&d), expected);
    assert_complete_entries(&cache);
}

/// Truncates `file` to a third of its length, keeping the file (and inode).
fn truncate_in_place(file: &Path) -> Vec<u8> {
    let bytes = std::fs::read(file).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.set_len(bytes.len() as u64 / 3).unwrap();
    bytes
}

fn restore_in_place(file: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.write_all(bytes).unwrap();
}

fn health(d: &Daemon) -> (u16, Value) {
    let h = d.get("/health");
    (h.status, h.json())
}

#[test]
fn a_graph_truncated_in_place_keeps_serving_and_sighup_recovers_once_restored() {
    let expected = answer_without_cache();
    let scratch = Scratch::new("truncated");
    let model = scratch.model_copy("tiny-copy");
    let cache = scratch.0.join("graphs");
    let config = scratch.config(&format!("model_dir: {}\n", model.display()));
    let mut d = Spawn::with_config(&config)
        .env("FLORENCE_GRAPH_CACHE", &cache.display().to_string())
        .ready();
    assert_eq!(answer(&d), expected);

    // Loaded: the weights are in memory or mapped from the cache, not read
    // from the model file again, so the damage changes no answer and /health
    // has nothing to say until something reads the file.
    let decoder = model.join(DECODER);
    let original = truncate_in_place(&decoder);
    assert_eq!(answer(&d), expected);
    let (status, h) = health(&d);
    assert_eq!((status, &h["model_loaded"]), (200, &json!(true)), "{h}");

    // A reload reads it: it fails naming the file, /health says so, the
    // loaded model goes on.
    d.signal(libc::SIGHUP);
    let failed = d.wait_log("reload failed", 1);
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("decoder_model_merged")),
        "{failed}"
    );
    let (status, h) = health(&d);
    assert_eq!(status, 200, "{h}");
    assert!(
        h["reload_error"]
            .as_str()
            .is_some_and(|e| e.contains("decoder_model_merged")),
        "{h}"
    );
    assert_eq!(answer(&d), expected);

    // Restored in place: SIGHUP loads it again, no restart.
    restore_in_place(&decoder, &original);
    d.signal(libc::SIGHUP);
    let done = d.wait_log("configuration reloaded", 1);
    assert_eq!(done["model_reloaded"], true, "{done}");
    let (status, h) = health(&d);
    assert_eq!(status, 200, "{h}");
    assert!(h["reload_error"].is_null(), "{h}");
    assert_eq!(answer(&d), expected);
    assert!(d.child.try_wait().unwrap().is_none(), "the daemon exited");
    // The cache holds the restored model's entries only, nothing partial.
    assert_complete_entries(&cache);
}
