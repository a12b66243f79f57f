//! An installed florenced looks for ONNX Runtime relative to where it is (and
//! at ORT_DYLIB_PATH and the system path), never in the checkout or the
//! temporary directory it was built in.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::scratch::Scratch;
use common::*;

/// `florenced` as if installed under `prefix/bin` (a hard link: same inode, so
/// the copy costs no space; a copy where linking is not possible).
fn install(prefix: &Path) -> PathBuf {
    let bin = prefix.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let exe = bin.join("florenced");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_florenced"), &exe).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_florenced"), &exe).unwrap();
    }
    exe
}

fn caption_one(exe: &Path, cwd: &Path) -> std::process::Output {
    Command::new(exe)
        .args(["run", "--threads", "1", "--model-dir"])
        .arg(model_dir())
        .arg(root().join("tests/fixtures/images/pattern_200x300.png"))
        .env_remove("ORT_DYLIB_PATH")
        .env_remove("FLORENCED_ORT_LIBRARY")
        .current_dir(cwd)
        .output()
        .unwrap()
}

#[test]
fn an_installed_binary_searches_beside_itself_and_not_the_checkout() {
    let scratch = Scratch::new("installed");
    let prefix = scratch.path().to_path_buf();
    let exe = install(&prefix);
    let checkout = root().canonicalize().unwrap();

    // No library beside it: the error lists every place searched, none of them
    // in the checkout this binary was built from.
    let out = caption_one(&exe, &prefix);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "found a library: {err}");
    let searched: Vec<&str> = err
        .lines()
        .filter(|l| l.trim_start().starts_with("- "))
        .collect();
    let prefix_real = prefix.canonicalize().unwrap();
    assert!(
        searched
            .iter()
            .any(|l| l.contains(&format!("{}/lib/florence/", prefix_real.display()))),
        "{err}"
    );
    for line in &searched {
        assert!(
            !line.contains(&checkout.display().to_string()) && !line.contains(".ort/lib"),
            "searched the build checkout: {line}\n{err}"
        );
    }

    // The installed layout, <prefix>/lib/florence/, is where it finds it.
    let lib_dir = prefix.join("lib/florence");
    std::fs::create_dir_all(&lib_dir).unwrap();
    std::os::unix::fs::symlink(
        checkout.join(".ort/lib/libonnxruntime.so"),
        lib_dir.join("libonnxruntime.so"),
    )
    .unwrap();
    let out = caption_one(&exe, &prefix);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        line["result"].is_object() || line["result"].is_string(),
        "{line}"
    );
}
