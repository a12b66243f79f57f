//! The distro build (meson.build + meson_options.txt) configures with its
//! options honoured. Compiling it is a release build of the workspace, minutes
//! on this machine, so that is left to the packager's `meson compile`; the
//! cargo commands it runs are the ones this suite already builds with.

mod common;

use std::process::Command;

/// `meson setup` in a new build directory (removed when the result drops).
fn setup(name: &str, options: &[&str]) -> (std::process::Output, common::scratch::Scratch) {
    let dir = common::scratch::Scratch::new(&format!("meson-{name}"));
    let out = Command::new("meson")
        .arg("setup")
        .arg(dir.path().join("build"))
        .args(options)
        .current_dir(common::root())
        .output()
        .expect("meson is installed by scripts/setup.sh");
    (out, dir)
}

/// Install paths of the configured targets.
fn installed(dir: &std::path::Path) -> Vec<String> {
    let out = Command::new("meson")
        .args(["introspect", "--installed"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&out.stdout).unwrap();
    let mut v: Vec<String> = map
        .values()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn meson_configures_with_its_options() {
    let (out, dir) = setup("default", &["--prefix=/usr"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let paths = installed(&dir.path().join("build"));
    assert_eq!(paths.len(), 3, "{paths:?}");
    assert!(paths[0].starts_with("/usr/bin/florenced"), "{paths:?}");
    assert_eq!(
        paths[1], "/usr/include/gstreamer-1.0/gst/florence/florence.h",
        "{paths:?}"
    );
    assert!(
        paths[2].contains("gstreamer-1.0/libgstflorence.so"),
        "{paths:?}"
    );

    let (out, dir) = setup("no-daemon", &["-Dflorenced=disabled"]);
    assert!(out.status.success());
    let paths = installed(&dir.path().join("build"));
    assert_eq!(paths.len(), 2, "{paths:?}");
    assert!(
        paths.iter().any(|p| p.ends_with("gst/florence/florence.h")),
        "{paths:?}"
    );
    assert!(
        paths.iter().any(|p| p.ends_with("libgstflorence.so")),
        "{paths:?}"
    );
}
