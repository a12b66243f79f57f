//! Short versions of `scripts/element-long-run.sh`: the element in live mode
//! over 2000 frames (every frame through, results produced, EOS reached, RSS
//! within its slack) and in every-frame mode over 200 (one result per frame,
//! as a bus message and as a text_src buffer). The script judges; the test
//! reads its report.

mod common;

use std::process::Command;

use common::plugin_dir;
use common::process::succeed;

fn long_run(mode: &str, frames: u32) -> serde_json::Value {
    let out = succeed(
        Command::new("/usr/bin/python3")
            .current_dir(common::root())
            .env("GST_PLUGIN_PATH", plugin_dir())
            .args(["scripts/element_long_run.py", "--mode", mode, "--frames"])
            .arg(frames.to_string()),
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(report["problems"], serde_json::json!([]), "{report}");
    assert_eq!(report["eos"], true, "{report}");
    assert_eq!(report["frames_through"], frames, "{report}");
    report
}

#[test]
fn live_mode_passes_every_frame_and_reaches_eos() {
    let r = long_run("live", 2000);
    assert!(r["results_messages"].as_u64().unwrap() > 0, "{r}");
    // Each result also went out on text_src.
    assert_eq!(r["results_text_buffers"], r["results_messages"], "{r}");
}

#[test]
fn every_frame_mode_gives_one_result_per_frame() {
    let r = long_run("every-frame", 200);
    assert_eq!(r["results_messages"], 200, "{r}");
    assert_eq!(r["results_text_buffers"], 200, "{r}");
    assert_eq!(r["captions_total"], 200, "{r}");
}
