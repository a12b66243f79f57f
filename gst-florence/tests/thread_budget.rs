//! One thread budget per process: graphs opened with `threads` 0 run on ONNX
//! Runtime's global pool, so loading more models adds no threads, while
//! `threads` N still gives each graph its own pool. One test in its own
//! binary: it counts the process's threads, which other tests would change.

mod common;

use std::path::Path;

use gstflorence::engine::{Florence, SessionOptions};

use common::scratch::Scratch;

/// The process's threads that are not exiting: the graph loaders end with
/// each load, and one that has ended may still be listed for a moment, with
/// the kernel's PF_EXITING flag (field 9 of its `stat`).
fn threads() -> usize {
    const PF_EXITING: u64 = 0x4;
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter(|task| {
            let stat = std::fs::read_to_string(task.as_ref().unwrap().path().join("stat"));
            // Gone between the listing and the read: not running either.
            let Ok(stat) = stat else { return false };
            let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            let flags: u64 = after_name
                .split_whitespace()
                .nth(6)
                .and_then(|f| f.parse().ok())
                .unwrap_or(0);
            flags & PF_EXITING == 0
        })
        .count()
}

fn load(dir: &Path, intra_threads: usize) -> Florence {
    Florence::load(
        dir,
        SessionOptions {
            intra_threads,
            graph_cache: None,
            ..SessionOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn models_on_the_process_pool_add_no_threads_and_own_pools_do() {
    let scratch = Scratch::new("thread-budget");
    let dirs: Vec<_> = (0..3).map(|i| scratch.model(&format!("m{i}"))).collect();
    // The first load starts ONNX Runtime and its pool.
    let first = load(&dirs[0], 0);
    let before = threads();
    let more: Vec<Florence> = dirs[1..].iter().map(|d| load(d, 0)).collect();
    assert_eq!(threads(), before, "models on the pool started threads");
    // Two threads per graph of its own: one worker beside the caller, for
    // each of its graphs (five: the tiny model has the batchable decoder's
    // two instead of the merged decoder).
    let own = load(&dirs[0], 2);
    let graphs = own.graph_sources().len();
    assert_eq!(graphs, 5);
    assert_eq!(
        threads(),
        before + graphs,
        "a model with threads=2 per graph"
    );
    drop((first, more, own));
}
