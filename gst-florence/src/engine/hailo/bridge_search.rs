//! Where the bridge libraries are and what they are called: one per HailoRT
//! major (scripts/build-hailo-bridges.sh builds them under these names).
//!
//! Search order: [`BRIDGE_DIR_ENV`] (or the setting) alone when given; else
//! the folder installed beside the program (`<prefix>/lib/florence/hailo/`,
//! found from the running executable or the plugin's own file), the bridges a
//! cargo build in this checkout compiled (scripts/build-hailo-bridges.sh's
//! `target/hailo-bridges/<triple>/`, and build.rs' against an installed
//! HailoRT's headers), then the package's [`INSTALLED_BRIDGE_DIR`].

use std::path::{Path, PathBuf};

use crate::engine::onnx::runtime::{cargo_checkout, this_module};

/// Environment variable naming the one folder to take bridges from.
pub const BRIDGE_DIR_ENV: &str = "FLORENCE_HAILO_BRIDGE_DIR";

/// The Debian package's folder of bridges.
pub const INSTALLED_BRIDGE_DIR: &str = "/usr/lib/florence/hailo";

/// The bridge for HailoRT `major` (`libflorence_hailo_hailort5.so`).
pub fn bridge_file_name(major: u32) -> String {
    format!("libflorence_hailo_hailort{major}.so")
}

/// The folders searched for a bridge, in order.
pub fn bridge_dirs(explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(dir) = explicit {
        return vec![dir.to_path_buf()];
    }
    let exe = std::env::current_exe()
        .ok()
        .and_then(|e| e.canonicalize().ok());
    let module = this_module().and_then(|m| m.canonicalize().ok());
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut push = |d: PathBuf| {
        if !dirs.contains(&d) {
            dirs.push(d);
        }
    };
    // <prefix>/bin/florenced -> <prefix>/lib/florence/hailo.
    if let Some(prefix) = exe.as_deref().and_then(Path::parent).and_then(Path::parent) {
        push(prefix.join("lib/florence/hailo"));
    }
    // The plugin's real file sits in <prefix>/lib/florence/ (GStreamer's
    // plugin folder links to it): its hailo/ beside it.
    if let Some(dir) = module
        .as_deref()
        .filter(|m| Some(*m) != exe.as_deref())
        .and_then(Path::parent)
    {
        push(dir.join("hailo"));
    }
    // A program run from cargo's output in a checkout.
    for anchor in [exe.as_deref(), module.as_deref()]
        .into_iter()
        .flatten()
        .filter_map(Path::parent)
    {
        if let Some(checkout) = cargo_checkout(anchor) {
            push(
                checkout
                    .join("target/hailo-bridges")
                    .join(format!("{}-unknown-linux-gnu", std::env::consts::ARCH)),
            );
            if let Some(built) = option_env!("FLORENCE_HAILO_BRIDGE_BUILT_DIR") {
                push(PathBuf::from(built));
            }
        }
    }
    push(PathBuf::from(INSTALLED_BRIDGE_DIR));
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_folder_is_the_only_one() {
        assert_eq!(
            bridge_dirs(Some(Path::new("/opt/bridges"))),
            [PathBuf::from("/opt/bridges")]
        );
    }

    #[test]
    fn the_search_ends_with_the_packages_folder_and_looks_into_this_checkout() {
        let dirs = bridge_dirs(None);
        assert_eq!(dirs.last(), Some(&PathBuf::from(INSTALLED_BRIDGE_DIR)));
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .canonicalize()
            .unwrap();
        assert!(
            dirs.iter()
                .any(|d| d.starts_with(root.join("target/hailo-bridges"))),
            "{dirs:?}"
        );
    }
}
