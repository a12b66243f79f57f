//! Running a command a test expects to succeed. Shared by the gst-florence and
//! florenced tests (`#[path]`-included by the latter).

use std::process::{Command, Output};

/// Runs `cmd` to its end; a failure shows the command, its stdout and its stderr.
pub fn succeed(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
