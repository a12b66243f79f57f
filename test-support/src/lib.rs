//! What the gst-florence and florenced integration tests share (a
//! dev-dependency of both, so neither includes the other's files): the
//! checkout's paths and the tiny model, artefacts `cargo build --workspace`
//! puts beside the test binaries, scratch directories, altered model copies,
//! and running a command that must succeed.

pub mod model_copies;
pub mod process;
pub mod scratch;

use std::path::{Path, PathBuf};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-support sits in the workspace")
        .to_path_buf()
}

pub fn fixtures() -> PathBuf {
    root().join("tests/fixtures")
}

/// The shipped tiny Florence-2 (onnx-community layout).
pub fn tiny_model_dir() -> PathBuf {
    fixtures().join("tiny-florence2")
}

/// A fixture image's PNG bytes (`tests/fixtures/images/NAME.png`).
pub fn fixture_png(name: &str) -> Vec<u8> {
    let path = fixtures().join(format!("images/{name}.png"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// target/<profile>: where cargo puts the binaries and libraries of the
/// workspace (the test binaries live in its `deps/`).
pub fn built_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("a test binary in target/<profile>/deps")
        .to_path_buf()
}

/// A file `cargo build --workspace` (scripts/test.sh) puts in [`built_dir`]:
/// libgstflorence.so, seccomp-exec, the Hailo stand-in.
pub fn built(name: &str) -> PathBuf {
    let path = built_dir().join(name);
    assert!(
        path.is_file(),
        "{} not built (run `cargo build --workspace` first, as scripts/test.sh does)",
        path.display()
    );
    path
}

/// The Hailo bridge stand-in (hailo-standin/, a cdylib): CI's Hailo device,
/// and its libhailort (FLORENCE_HAILORT_LIBRARY).
pub fn hailo_standin_library() -> PathBuf {
    built("libflorence_hailo_standin.so")
}

/// A fresh folder of bridges (FLORENCE_HAILO_BRIDGE_DIR) holding a link to
/// the stand-in under each of `files` (the engine's bridge names, e.g.
/// `libflorence_hailo_hailort5.so`): links, so that the stand-in loaded as
/// libhailort and as the bridge is one library with one set of statics.
pub fn hailo_standin_bridge_dir(name: &str, files: &[String]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "florence-hailo-bridges-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating the bridge folder");
    for f in files {
        std::os::unix::fs::symlink(hailo_standin_library(), dir.join(f))
            .expect("linking the stand-in as a bridge");
    }
    dir
}
