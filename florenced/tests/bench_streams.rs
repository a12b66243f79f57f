//! The streams benchmark: `scripts/bench-streams.sh --quick` (the tiny model,
//! 1 and 2 streams, every workload, each against its baseline of one process
//! per stream) runs to its tables, so the script cannot rot.

mod common;

use std::process::Command;

use common::process::succeed;
use common::scratch::Scratch;
use common::{built, root};

/// The row of `streams` streams in `processes` processes in the table under `heading`.
fn row<'a>(report: &'a str, heading: &str, streams: u32, processes: u32) -> Vec<&'a str> {
    let table = report
        .split_once(heading)
        .unwrap_or_else(|| panic!("no table {heading:?} in\n{report}"))
        .1;
    let line = table
        .lines()
        .take_while(|l| !l.ends_with(':'))
        .find(|l| l.starts_with(&format!("| {streams} | {processes} | ")))
        .unwrap_or_else(|| panic!("no row {streams}/{processes} under {heading:?} in\n{report}"));
    line.split('|').map(str::trim).collect()
}

#[test]
fn streams_bench_quick_mode_prints_every_workload_against_its_baseline() {
    let scratch = Scratch::new("bench-streams");
    let plugin = built("libgstflorence.so");
    let out = succeed(
        Command::new("bash")
            .current_dir(root())
            .env("FLORENCED_BIN", env!("CARGO_BIN_EXE_florenced"))
            .env("FLORENCE_PLUGIN_DIR", plugin.parent().unwrap())
            .args(["scripts/bench-streams.sh", "--quick", "--log-dir"])
            .arg(scratch.path()),
    );
    let report = String::from_utf8(out.stdout).unwrap();
    // Every analysis had its fixed length and encoded its own frame or image.
    assert!(
        report.contains(
            "- check: 0 analyses of another length; 0 timed element analyses reused vision features"
        ),
        "{report}"
    );
    for heading in [
        "`mode=every-frame`, `<CAPTION>` greedy, 20 tokens:",
        "`mode=live` (30 fps sources), `<CAPTION>` greedy, 20 tokens:",
        "florenced clients, `<CAPTION>` greedy, 20 tokens:",
        "florenced clients, `<MORE_DETAILED_CAPTION>` greedy, 100 tokens:",
    ] {
        for (streams, processes) in [(1, 1), (2, 1), (2, 2)] {
            let cells = row(&report, heading, streams, processes);
            let per_second: f64 = cells[5].parse().unwrap_or(f64::NAN);
            assert!(per_second > 0.0, "{heading} {cells:?}");
            assert!(cells[7].parse::<f64>().is_ok(), "p50: {cells:?}");
        }
        // Two streams sharing one model hold less than two processes with a model each.
        let shared: f64 = row(&report, heading, 2, 1)[3].parse().unwrap();
        let separate: f64 = row(&report, heading, 2, 2)[3].parse().unwrap();
        assert!(
            shared < separate,
            "{heading}: {shared} MB against {separate} MB"
        );
        assert!(row(&report, heading, 2, 1)[9].ends_with('x'), "{heading}");
    }
    // The targets are printed; without 4 streams the first two say so.
    for target in [
        "- target: resident memory with 4 streams at most 1.3x one stream, one process: not measured",
        "- target: 4 concurrent 100-token detailed captions finish at least 1.8x sooner than the same 4 one after another on the same cores: not measured",
    ] {
        assert!(report.contains(target), "no {target:?} in\n{report}");
    }
    let single = report
        .lines()
        .find(|l| l.starts_with("- target: a single stream no slower"))
        .unwrap_or_else(|| panic!("no single-stream target in\n{report}"));
    assert_eq!(single.matches("x (").count(), 4, "{single}");
}
