//! HailoRT's library at run time: libhailort is found on this machine, loaded
//! RTLD_GLOBAL (a bridge leaves HailoRT's symbols undefined, and they resolve
//! against it when the bridge is loaded next), and asked for its version
//! through HailoRT's C function `hailo_get_library_version`, which picks the
//! bridge.

use std::ffi::c_void;
use std::path::{Path, PathBuf};

pub use super::ffi::HailoRtVersion;
use super::status::HailoError;

/// Environment variable naming the libhailort to use (and no other): how the
/// tests point the engine at the stand-in, or at a HailoRT outside the
/// loader's search path.
pub const HAILORT_LIBRARY_ENV: &str = "FLORENCE_HAILORT_LIBRARY";

/// The library's name for the dynamic loader. HailoRT's soname carries its
/// full version (`libhailort.so.4.23.0`), so without the development link the
/// versioned files are looked for in [`LIBRARY_DIRS`].
const LIBRARY_NAME: &str = "libhailort.so";

/// Where HailoRT's packages and its `make install` put the library.
const LIBRARY_DIRS: [&str; 4] = ["/usr/lib", "/usr/local/lib", "/lib", "/usr/lib64"];

/// A libhailort loaded into this process, with its version. It is never
/// unloaded: HailoRT keeps threads and static state, and a bridge's symbols
/// point into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HailoRtLibrary {
    pub path: PathBuf,
    pub version: HailoRtVersion,
}

type GetVersion = unsafe extern "C" fn(*mut HailoRtVersion) -> i32;

/// Finds and loads libhailort: `explicit` alone when given, else
/// `libhailort.so` through the dynamic loader, else the newest
/// `libhailort.so.<version>` in [`LIBRARY_DIRS`] (and their multiarch folders).
pub fn load(explicit: Option<&Path>) -> Result<HailoRtLibrary, HailoError> {
    if let Some(path) = explicit {
        if !path.exists() {
            return Err(HailoError::NoHailoRt {
                looked: format!("{} ({HAILORT_LIBRARY_ENV})", path.display()),
            });
        }
        return open(path.as_os_str(), path);
    }
    match open(LIBRARY_NAME.as_ref(), Path::new(LIBRARY_NAME)) {
        Err(HailoError::HailoRtUnusable { reason, .. }) if is_not_found(&reason) => {}
        other => return other,
    }
    let dirs = library_dirs();
    match newest_versioned(&dirs) {
        Some(path) => open(path.as_os_str(), &path),
        None => Err(HailoError::NoHailoRt {
            looked: format!(
                "{LIBRARY_NAME} through the dynamic loader, and {LIBRARY_NAME}.<version> in {}",
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// Whether dlopen's message says the file is not there (rather than unusable).
fn is_not_found(reason: &str) -> bool {
    reason.contains("No such file or directory")
}

fn library_dirs() -> Vec<PathBuf> {
    let multiarch = format!("{}-linux-gnu", std::env::consts::ARCH);
    let mut dirs = Vec::new();
    for d in LIBRARY_DIRS {
        dirs.push(PathBuf::from(d));
        dirs.push(Path::new(d).join(&multiarch));
    }
    dirs
}

/// The `libhailort.so.<version>` with the highest version in `dirs`.
fn newest_versioned(dirs: &[PathBuf]) -> Option<PathBuf> {
    let prefix = format!("{LIBRARY_NAME}.");
    let mut found: Vec<(Vec<u32>, PathBuf)> = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(version) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
                continue;
            };
            let numbers: Option<Vec<u32>> = version.split('.').map(|p| p.parse().ok()).collect();
            if let Some(numbers) = numbers {
                found.push((numbers, entry.path()));
            }
        }
    }
    found.into_iter().max().map(|(_, path)| path)
}

/// dlopens `name` (RTLD_NOW | RTLD_GLOBAL) and reads its version; `shown` is
/// the path errors name.
fn open(name: &std::ffi::OsStr, shown: &Path) -> Result<HailoRtLibrary, HailoError> {
    use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
    let unusable = |reason: String| HailoError::HailoRtUnusable {
        path: shown.to_path_buf(),
        reason,
    };
    // SAFETY: loading runs the library's initialisers: HailoRT's, found where
    // the system installs it or named by the operator.
    let lib = unsafe { Library::open(Some(name), RTLD_NOW | RTLD_GLOBAL) }
        .map_err(|e| unusable(super::ffi::loader_error(&e)))?;
    // SAFETY: HailoRT's declaration: hailo_status hailo_get_library_version(hailo_version_t *).
    let get: GetVersion = *unsafe { lib.get::<GetVersion>(b"hailo_get_library_version\0") }
        .map_err(|e| {
            unusable(format!(
                "it has no hailo_get_library_version: {}",
                super::ffi::loader_error(&e)
            ))
        })?;
    // Never unloaded (see HailoRtLibrary).
    let _ = lib.into_raw();
    let mut version = HailoRtVersion::default();
    // SAFETY: a valid out-pointer of the declared type.
    let status = unsafe { get(&mut version) };
    if status != 0 {
        return Err(unusable(format!(
            "hailo_get_library_version failed with {}",
            super::Status(status)
        )));
    }
    let path = crate::engine::onnx::runtime::module_of(get as *const c_void)
        .unwrap_or_else(|| shown.to_path_buf());
    Ok(HailoRtLibrary { path, version })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_versioned_library_is_chosen() {
        let scratch = florence_test_support::scratch::Scratch::new("hailort-dirs");
        let dir = scratch.path();
        let a = dir.join("a");
        let b = dir.join("b");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        for (d, f) in [
            (&a, "libhailort.so.4.9.0"),
            (&a, "libhailort.so.4.23.0"),
            (&b, "libhailort.so.4.20.1"),
            (&b, "libhailort.so.x"),
            (&b, "libhailortcli.so.5.0.0"),
        ] {
            std::fs::write(d.join(f), b"").unwrap();
        }
        let got = newest_versioned(&[a.clone(), b.clone(), dir.join("absent")]);
        assert_eq!(got, Some(a.join("libhailort.so.4.23.0")));
        assert_eq!(newest_versioned(&[dir.join("absent")]), None);
    }

    #[test]
    fn an_explicit_library_that_is_not_there_is_no_hailort() {
        let e = load(Some(Path::new("/nonexistent/libhailort.so.5.2.0"))).unwrap_err();
        assert!(matches!(e, HailoError::NoHailoRt { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.starts_with("no HailoRT library on this machine")
                && text.contains("/nonexistent/libhailort.so.5.2.0")
                && text.contains(HAILORT_LIBRARY_ENV),
            "{text}"
        );
    }

    #[test]
    fn versions_print_as_hailort_writes_them() {
        let v = HailoRtVersion {
            major: 4,
            minor: 23,
            revision: 0,
        };
        assert_eq!(v.to_string(), "4.23.0");
    }
}
