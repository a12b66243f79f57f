//! The exporter's precision variants beyond what the benchmark's tests write:
//! the graph rewrites behind `_int8mm` (their unit tests, on synthetic graphs
//! and the tiny model's vision encoder), and `_int8mm` itself written into a
//! copy of the tiny model, checked by the exporter and run by `florenced run`
//! against fp32.

mod common;

use std::path::Path;
use std::process::Command;

use common::process::succeed;
use common::scratch::Scratch;
use common::{bench_python, model_copies, model_dir, root};

const GRAPHS: [&str; 4] = [
    "vision_encoder",
    "embed_tokens",
    "encoder_model",
    "decoder_model_merged",
];

#[test]
fn graph_rewrite_unit_tests_pass() {
    let out = succeed(
        Command::new(bench_python())
            .current_dir(root())
            .args(["-m", "unittest", "discover", "-s", "tools/export", "-p"])
            .arg("test_graph_rewrites.py"),
    );
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(report.contains("\nOK"), "{report}");
}

fn results(dir: &Path, variant: &str, task: &str, images: &[String]) -> Vec<serde_json::Value> {
    let out = succeed(
        Command::new(env!("CARGO_BIN_EXE_florenced"))
            .arg("run")
            .arg("--model-dir")
            .arg(dir)
            .args(["--variant", variant, "--threads", "1", "--task", task])
            .args(images),
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["result"].clone())
        .collect()
}

#[test]
fn int8mm_is_written_checked_and_answers_as_fp32_does() {
    let scratch = Scratch::new("variant-int8mm");
    let dir = scratch.path().join("tiny");
    model_copies::copy_dir(&model_dir(), &dir);
    let out = succeed(
        Command::new(bench_python())
            .current_dir(root())
            .arg("tools/export/add_variants.py")
            .arg("--model-dir")
            .arg(&dir)
            .args(["--variants", "int8mm", "--threads", "1"]),
    );
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        log.contains("_int8mm: tokens along float32's greedy path"),
        "{log}"
    );
    for g in GRAPHS {
        let file = dir.join(format!("onnx/{g}_int8mm.onnx"));
        assert!(file.is_file(), "{} not written", file.display());
    }

    let images: Vec<String> = std::fs::read_dir(root().join("tests/fixtures/images"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.contains("scene_"))
        .collect();
    assert_eq!(images.len(), 4, "{images:?}");
    // Whole answers: the caption's text, and what `<OD>` found (its labels; the
    // tiny model's boxes are near-ties that `_int8` and `_qdq` move as well).
    let (mut same, mut total) = (0, 0);
    for (task, key) in [("<CAPTION>", None), ("<OD>", Some("labels"))] {
        let fp32 = results(&dir, "", task, &images);
        let int8mm = results(&dir, "_int8mm", task, &images);
        assert_eq!(fp32.len(), images.len());
        assert_eq!(int8mm.len(), images.len());
        let part = |v: &serde_json::Value| key.map_or(v.clone(), |k| v[k].clone());
        same += fp32
            .iter()
            .zip(&int8mm)
            .filter(|(a, b)| part(a) == part(b))
            .count();
        total += images.len();
    }
    eprintln!("_int8mm: {same} of {total} answers as fp32's");
    // 8 of 8 here; one may flip on another CPU's integer kernels.
    assert!(same + 1 >= total, "{same} of {total} answers as fp32's");
}
