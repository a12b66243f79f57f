//! pipelines/caption_probe.py, the hailo-rpi5-style Python app, reads FlorenceCaptionMeta
//! in a pad probe through Debian's python3-gi and the built plugin.

use std::path::Path;
use std::process::Command;

#[test]
fn python_pad_probe_reads_the_meta() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // target/<profile>/deps/python_example-* -> target/<profile>, where the cdylib is.
    let exe = std::env::current_exe().unwrap();
    let plugin_dir = exe.parent().and_then(Path::parent).unwrap();
    assert!(
        plugin_dir.join("libgstflorence.so").is_file(),
        "libgstflorence.so not built in {} (run `cargo build` first, as scripts/test.sh does)",
        plugin_dir.display()
    );
    let out = Command::new("/usr/bin/python3")
        .current_dir(&root)
        .env("GST_PLUGIN_PATH", plugin_dir)
        .args([
            "pipelines/caption_probe.py",
            "--model-dir",
            "tests/fixtures/tiny-florence2",
            "--num-buffers",
            "4",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
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

    let bad = Command::new("/usr/bin/python3")
        .current_dir(&root)
        .env("GST_PLUGIN_PATH", plugin_dir)
        .args(["pipelines/caption_probe.py", "--model-dir", "/nonexistent"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("/nonexistent"));
}
