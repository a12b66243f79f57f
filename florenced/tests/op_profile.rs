//! `tools/bench/op_profile.py` (the operator profile at several thread counts
//! behind docs/src/performance.md's "Threads on bigger machines") run on the
//! tiny model, so the tool cannot rot.

mod common;

use std::process::Command;

use common::process::succeed;
use common::{bench_python, model_dir, root};

#[test]
fn op_profile_prints_each_graphs_scaling_and_its_operators() {
    let out = succeed(
        Command::new(bench_python())
            .current_dir(root().join("tools/bench"))
            .arg("op_profile.py")
            .arg("--model-dir")
            .arg(model_dir())
            .args(["--threads", "2,1", "--rounds", "1", "--tokens", "6"]),
    );
    let report = String::from_utf8(out.stdout).unwrap();
    assert!(
        report.contains("`<CAPTION>` greedy 6 tokens, 1 rounds, threads 1, 2"),
        "{report}"
    );
    for graph in [
        "vision encoder",
        "token embedding",
        "text encoder",
        "decoder (all steps)",
        "caption (all graphs)",
    ] {
        let row = report
            .lines()
            .find(|l| l.starts_with(&format!("| {graph} | ")))
            .unwrap_or_else(|| panic!("no row for {graph} in\n{report}"));
        // Two measured times, the speed-up, p, and three projections.
        assert_eq!(row.matches(" | ").count(), 7, "{row}");
        assert!(row.contains("x | "), "{row}");
    }
    // The operators: the merged decoder's If is its branch's nodes, not a row.
    assert!(
        report.contains("| vision encoder | MatMul | ")
            || report.contains("| vision encoder | FusedMatMul | "),
        "{report}"
    );
    assert!(
        report.contains("| decoder (all steps) | MatMul | "),
        "{report}"
    );
    assert!(!report.contains("| If | "), "{report}");
}
