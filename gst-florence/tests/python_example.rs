//! pipelines/caption_probe.py, the hailo-rpi5-style Python app, reads FlorenceCaptionMeta
//! in a pad probe through Debian's python3-gi and the built plugin; the region metas
//! read with GstVideo.

mod common;

use std::process::Command;

use common::plugin_dir;
use common::process::succeed;

/// Debian's python3 running `script ARGS` from the repository root, with the built plugin.
fn python(script: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.current_dir(common::root())
        .env("GST_PLUGIN_PATH", plugin_dir())
        .arg(script)
        .args(args);
    cmd
}

fn caption_probe(args: &[&str]) -> Command {
    python("pipelines/caption_probe.py", args)
}

#[test]
fn python_pad_probe_reads_the_meta() {
    let out = succeed(&mut caption_probe(&[
        "--model-dir",
        "tests/fixtures/tiny-florence2",
        "--num-buffers",
        "4",
    ]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let records: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        records.len(),
        4,
        "every-frame mode: one fresh result per buffer"
    );
    for r in &records {
        assert_eq!(r["task"], "<CAPTION>");
        assert!(!r["text"].as_str().unwrap().is_empty());
    }

    // Live mode, a 30-frame clip played as fast as it goes: the analysis in
    // flight at EOS is delivered (as a message), so the app sees a result.
    let live = succeed(&mut caption_probe(&[
        "--model-dir",
        "tests/fixtures/tiny-florence2",
        "--mode",
        "live",
    ]));
    assert!(
        String::from_utf8_lossy(&live.stdout).contains("<CAPTION>"),
        "{}",
        String::from_utf8_lossy(&live.stderr)
    );

    let bad = caption_probe(&["--model-dir", "/nonexistent"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("/nonexistent"));
}

#[test]
fn python_gives_buffers_their_own_requests() {
    // Stock PyGObject: add-request carries every field (ints, int64 through
    // GObject.Value, doubles, strings from gst_structure_from_string), and
    // malformed requests come back as invalid-request results.
    let out = succeed(&mut python(
        "gst-florence/tests/support/request_fields.py",
        &["tests/fixtures/tiny-florence2"],
    ));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("11 requests, 0 failures"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn python_reads_every_region_task_as_region_metas() {
    // Stock PyGObject's GstVideo: each region's rectangle, type and
    // florence/region params agree with the buffer's own result, every task.
    let out = succeed(&mut python(
        "gst-florence/tests/support/region_metas.py",
        &[
            "tests/fixtures/tiny-florence2",
            "tests/fixtures/images/scene_640x480.png",
        ],
    ));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("8 tasks, 8 regions, 0 mismatches"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
