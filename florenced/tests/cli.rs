//! `florenced run` as a user runs it: the README's main job, and clear failures.

mod common;

use std::process::Command;

use common::process::succeed;
use common::root;

fn florenced() -> Command {
    Command::new(env!("CARGO_BIN_EXE_florenced"))
}

#[test]
fn run_prints_the_reference_result_as_json() {
    let refs: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/references.json")).unwrap(),
    )
    .unwrap();
    let case = refs["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["image"] == "scene_640x480" && c["task"] == "<OD>")
        .unwrap();
    let out = succeed(
        florenced()
            .current_dir(root())
            .args([
                "run",
                "--model-dir",
                "tests/fixtures/tiny-florence2",
                "--task",
                "od",
                "--threads",
                "1",
                "--max-new-tokens",
            ])
            .arg(case["max_new_tokens"].to_string())
            .arg("tests/fixtures/images/scene_640x480.png"),
    );
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["task"], "<OD>");
    let want = &case["beam3"]["parsed"];
    let got = &line["result"];
    assert_eq!(got["labels"], want["labels"]);
    let as_f64 = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .flat_map(|b| b.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
            .collect()
    };
    assert_eq!(as_f64(&got["bboxes"]), as_f64(&want["bboxes"]));
    assert!(line["token_count"].as_u64().unwrap() >= 1);
}

#[test]
fn bad_inputs_exit_non_zero_with_a_message() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["run", "--model-dir", "/nonexistent", "x.png"],
            "/nonexistent",
        ),
        (
            &["run", "--model-dir", ".", "--backend", "gpu", "x.png"],
            "unknown backend \"gpu\"; expected auto, onnx or hailo",
        ),
        (
            &[
                "run",
                "--model-dir",
                ".",
                "--execution-provider",
                "gpu",
                "x.png",
            ],
            "unknown execution provider \"gpu\"",
        ),
        (
            &[
                "run",
                "--model-dir",
                "tests/fixtures/tiny-florence2",
                "--task",
                "<NOPE>",
                "tests/fixtures/images/pixel_1x1.png",
            ],
            "unknown task",
        ),
        (
            &[
                "run",
                "--model-dir",
                "tests/fixtures/tiny-florence2",
                "Cargo.toml",
            ],
            "cannot read image Cargo.toml",
        ),
    ];
    for (args, needle) in cases {
        let out = florenced().current_dir(root()).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn the_readme_task_examples_run() {
    // The task options the README lists next to the main job.
    let cases: [(&[&str], &str); 8] = [
        (&["--task", "od"], "<OD>"),
        (&["--task", "<OCR_WITH_REGION>"], "<OCR_WITH_REGION>"),
        (
            &[
                "--task",
                "caption_to_phrase_grounding",
                "--text",
                "a red square",
            ],
            "<CAPTION_TO_PHRASE_GROUNDING>",
        ),
        (
            &["--task", "region_to_category", "--region", "10,20,200,180"],
            "<REGION_TO_CATEGORY>",
        ),
        (
            &["--task", "vqa", "--text", "What color is the background?"],
            "<VQA>",
        ),
        (
            &[
                "--task",
                "region_to_category",
                "--text",
                "<loc_52><loc_332><loc_932><loc_774>",
            ],
            "<REGION_TO_CATEGORY>",
        ),
        // Sampling with the model's default 3 beams, and greedy.
        (&["--temperature", "0.7", "--seed", "1"], "<CAPTION>"),
        (&["--num-beams", "1", "--verbose"], "<CAPTION>"),
    ];
    for (args, task) in cases {
        let out = succeed(
            florenced()
                .current_dir(root())
                .args(["run", "--model-dir", "tests/fixtures/tiny-florence2"])
                .args(["--threads", "1"])
                .args(args)
                .arg("tests/fixtures/images/scene_640x480.png"),
        );
        let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(line["task"], task, "{args:?}");
        if args.contains(&"--verbose") {
            // The provider the graphs ran on, beside the contract's `backend`.
            assert_eq!(line["backend"], "onnx-cpu", "{line}");
            assert_eq!(line["execution_provider"], "CPUExecutionProvider", "{line}");
        }
    }
    // A malformed region is refused by name.
    let out = florenced()
        .current_dir(root())
        .args(["run", "--model-dir", "tests/fixtures/tiny-florence2"])
        .args(["--task", "region_to_category", "--region", "10,20,200"])
        .arg("tests/fixtures/images/scene_640x480.png")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("x1,y1,x2,y2"));
}
