//! Checks on an installed tree (systemd/install.sh into a DESTDIR, the Debian
//! package unpacked into a root): its files, and that the installed florenced
//! and GStreamer plugin work from there with nothing from the checkout.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::process::succeed;
use crate::common::{model_dir, root};

/// A fresh, empty directory under the system's temporary folder.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("florence-{name}-{}", std::process::id()));
    if dir.exists() {
        // Staged files are read-only for others; root may still remove them.
        let _ = std::fs::remove_dir_all(&dir);
    }
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The cargo output folder the test binary's florenced was built in: the
/// debug artefacts the tests install (no release build).
pub fn artefacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_florenced"))
        .parent()
        .unwrap()
        .to_path_buf();
    assert!(
        dir.join("libgstflorence.so").is_file(),
        "no libgstflorence.so in {} (cargo build --workspace builds the plugin)",
        dir.display()
    );
    dir
}

/// GStreamer's system plugin directory, as pkg-config says.
pub fn system_plugin_dir() -> String {
    let out = succeed(Command::new("pkg-config").args(["--variable=pluginsdir", "gstreamer-1.0"]));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Every entry under `dir`: its kind and mode, a link's target, a file's sha256.
pub fn tree(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(dir).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.insert(rel, format!("link -> {}", target.display()));
            } else if meta.is_dir() {
                out.insert(rel, format!("dir {mode:o}"));
                stack.push(path);
            } else {
                out.insert(rel, format!("file {mode:o}"));
                files.push(path);
            }
        }
    }
    // sha256sum: the binaries are hundreds of MB; a debug-built hasher is slow.
    if !files.is_empty() {
        let sums = succeed(Command::new("sha256sum").args(&files));
        for line in String::from_utf8(sums.stdout).unwrap().lines() {
            let (sum, path) = line.split_once("  ").unwrap();
            let rel = Path::new(path)
                .strip_prefix(dir)
                .unwrap()
                .display()
                .to_string();
            out.get_mut(&rel).unwrap().push_str(&format!(" {sum}"));
        }
    }
    out
}

/// A command with nothing from the checkout or the caller's environment that
/// could find ONNX Runtime or a plugin for it.
fn clean(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for var in [
        "ORT_DYLIB_PATH",
        "FLORENCED_ORT_LIBRARY",
        "GST_PLUGIN_PATH",
        "GST_PLUGIN_PATH_1_0",
        "GST_PLUGIN_SYSTEM_PATH_1_0",
        "LD_LIBRARY_PATH",
    ] {
        cmd.env_remove(var);
    }
    cmd.current_dir(std::env::temp_dir());
    cmd
}

/// `florenced run` of the installed binary on the tiny model: one JSON line.
pub fn run_installed_florenced(exe: &Path) -> serde_json::Value {
    let out = succeed(
        clean(exe)
            .args(["run", "--threads", "1", "--num-beams", "1", "--model-dir"])
            .arg(model_dir())
            .arg(root().join("tests/fixtures/images/scene_640x480.png")),
    );
    let line: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(line["task"], "<CAPTION>", "{line}");
    assert!(
        line["result"].as_str().is_some_and(|r| !r.is_empty()),
        "{line}"
    );
    line
}

/// A GStreamer tool that sees the installed plugin directory (first) and the
/// system's, with its own registry, as a user without GST_PLUGIN_PATH would.
pub fn gst_tool(tool: &str, plugin_dir: &Path, registry: &Path) -> Command {
    let host = host_plugins_without_florence(registry.parent().unwrap_or(Path::new(".")));
    let mut cmd = clean(tool);
    cmd.env(
        "GST_PLUGIN_SYSTEM_PATH",
        format!("{}:{}", plugin_dir.display(), host.display()),
    )
    .env("GST_REGISTRY", registry);
    cmd
}

/// GStreamer's system plugins (links in `beside/host-plugins`) without
/// florence's: on a machine where the service is installed, its link in the
/// system directory must not stand in for the tree under test.
fn host_plugins_without_florence(beside: &Path) -> PathBuf {
    let dir = beside.join("host-plugins");
    if !dir.is_dir() {
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(system_plugin_dir()).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name() != "libgstflorence.so" {
                std::os::unix::fs::symlink(entry.path(), dir.join(entry.file_name())).unwrap();
            }
        }
    }
    dir
}

/// One frame through florencecaption; the outcome of gst-launch-1.0 -m.
pub fn one_frame(plugin_dir: &Path, registry: &Path) -> std::process::Output {
    let pipeline = format!(
        "videotestsrc num-buffers=1 ! video/x-raw,width=320,height=240 ! \
         florencecaption model-dir={} mode=every-frame threads=1 num-beams=1 ! fakesink",
        model_dir().display()
    );
    gst_tool("gst-launch-1.0", plugin_dir, registry)
        .arg("-m")
        .args(pipeline.split_whitespace())
        .output()
        .unwrap()
}

/// gst-inspect-1.0 finds florencecaption in `plugin_dir` (the installed link to
/// `real_file`), and a one-frame pipeline captions with the ONNX Runtime
/// installed beside the plugin's real file: without that copy it fails.
pub fn check_installed_plugin(plugin_dir: &Path, real_file: &Path, scratch: &Path) {
    let registry = scratch.join("registry.bin");
    let out = succeed(gst_tool("gst-inspect-1.0", plugin_dir, &registry).arg("florencecaption"));
    let text = String::from_utf8_lossy(&out.stdout);
    let link = plugin_dir.join("libgstflorence.so");
    assert!(
        text.lines()
            .any(|l| l.contains("Filename") && l.contains(&link.display().to_string())),
        "not loaded from {}: {text}",
        link.display()
    );
    assert_eq!(
        link.canonicalize().unwrap(),
        real_file.canonicalize().unwrap()
    );

    let out = one_frame(plugin_dir, &registry);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("florence-caption"),
        "no caption: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let ort = real_file.with_file_name("libonnxruntime.so");
    let aside = real_file.with_file_name("libonnxruntime.so.aside");
    std::fs::rename(&ort, &aside).unwrap();
    let out = one_frame(plugin_dir, &registry);
    std::fs::rename(&aside, &ort).unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let real_dir = real_file.parent().unwrap().canonicalize().unwrap();
    assert!(
        !out.status.success()
            && all.contains(&real_dir.join("libonnxruntime.so").display().to_string()),
        "the plugin should have looked for ONNX Runtime in {} only: {all}",
        real_dir.display()
    );
}

/// The README's command line that starts with `start` (the operations
/// section's commands are run by the tests as written, paths aside).
pub fn readme_command(start: &str) -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    readme
        .lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no `{start}` command in the README"))
        .split("  #")
        .next()
        .unwrap()
        .trim()
        .to_owned()
}

/// The messages of the README's troubleshooting table (its first column).
pub fn troubleshooting_messages() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let table = readme
        .split("\n## Troubleshooting")
        .nth(1)
        .expect("a troubleshooting section in the README");
    table
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter_map(|row| {
            let cell = row.trim_start_matches('|').trim_start();
            let fence = if cell.starts_with("``") { "``" } else { "`" };
            let rest = cell.strip_prefix(fence)?;
            Some(rest[..rest.find(fence)?].trim().to_owned())
        })
        .collect()
}
