//! The quality table: its scoring's unit tests, and `scripts/bench.sh --quality
//! --quick` (fp32 and _int8 of the tiny model, and the Hailo split over the
//! stand-in, on 3 held-out scenes) run to its tables, so the script cannot rot.

mod common;

use std::process::Command;

use common::process::succeed;
use common::scratch::Scratch;
use common::{bench_python, root};

#[test]
fn quality_scoring_unit_tests_pass() {
    let out = succeed(
        Command::new(bench_python())
            .current_dir(root())
            .args(["-m", "unittest", "discover", "-s", "tools/bench", "-p"])
            .arg("test_quality_*.py"),
    );
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(report.contains("\nOK"), "{report}");
}

#[test]
fn quality_quick_mode_scores_each_configuration_against_fp32() {
    let scratch = Scratch::new("quality-test");
    let (logs, cache) = (scratch.path().join("logs"), scratch.path().join("cache"));
    let out = succeed(
        Command::new("bash")
            .current_dir(root())
            .env("FLORENCED_BIN", env!("CARGO_BIN_EXE_florenced"))
            .env(
                "FLORENCE_HAILO_STANDIN",
                common::built("libflorence_hailo_standin.so"),
            )
            // An empty cache: the script writes the _int8 variant itself.
            .env("FLORENCE_BENCH_CACHE", &cache)
            .args(["scripts/bench.sh", "--quality", "--quick", "--threads", "1"])
            .arg("--log-dir")
            .arg(&logs),
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("3 held-out generated scenes (seed 2026)"),
        "{table}"
    );
    for head in [
        "| configuration | `<OD>` P | `<OD>` R |",
        "| configuration | `<CAPTION>` exact | `<CAPTION>` CER |",
        "| configuration | `<REGION_TO_CATEGORY>` acc |",
    ] {
        assert!(table.contains(head), "no header {head:?} in\n{table}");
    }
    let rows = |label: &str| -> Vec<Vec<String>> {
        table
            .lines()
            .filter(|l| l.starts_with(&format!("| {label} | ")))
            .map(|l| l.split('|').map(|c| c.trim().to_string()).collect())
            .collect()
    };
    // One row per table for each configuration; fp32 is the reference, the others
    // show their difference to it.
    let (fp32, int8, hailo) = (
        rows("fp32 384"),
        rows("_int8 384"),
        rows("Hailo split (stand-in) 384"),
    );
    assert_eq!((fp32.len(), int8.len(), hailo.len()), (3, 3, 3), "{table}");
    // Text table, `<CAPTION>` CER: the trained model's captions are near their
    // targets (a model fed the wrong image, or a broken scorer, is not).
    let cer: f64 = fp32[1][3].parse().unwrap_or_else(|_| panic!("{table}"));
    assert!(cer < 60.0, "fp32 <CAPTION> CER {cer} in\n{table}");
    assert!(int8[1][3].contains(" ("), "{table}");
    // The split runs only captions.
    assert!(hailo[1][3].contains(" ("), "{table}");
    assert_eq!(hailo[1][5], "-", "{table}");
    assert!(
        hailo[0][2..].iter().all(|c| c == "-" || c.is_empty()),
        "{table}"
    );
}
