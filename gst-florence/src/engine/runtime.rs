//! Finding and loading the ONNX Runtime shared library.
//!
//! `ort` is built with `load-dynamic`: nothing is linked or downloaded at
//! build time. The library is looked up, in order, at
//! 1. an explicit path (element property / daemon configuration),
//! 2. `ORT_DYLIB_PATH`,
//! 3. the project-local folder that `scripts/setup.sh` fills from the pinned
//!    PyPI wheel (and the same layout next to an installed binary),
//! 4. the system library search path (`dlopen("libonnxruntime.so")`).
//!
//! ONNX Runtime allows one environment per process, so the first successful
//! load wins and every later caller shares it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// File name of the ONNX Runtime library on this platform.
pub const LIBRARY_NAME: &str = if cfg!(target_os = "macos") {
    "libonnxruntime.dylib"
} else if cfg!(windows) {
    "onnxruntime.dll"
} else {
    "libonnxruntime.so"
};

/// Folder (relative to the repository root) that `scripts/setup.sh` fills.
pub const PROJECT_LOCAL_DIR: &str = ".ort/lib";

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "ONNX Runtime library not found; looked at:\n{}\nRun `bash scripts/setup.sh` (unpacks the pinned onnxruntime wheel into {PROJECT_LOCAL_DIR}) or set ORT_DYLIB_PATH to a libonnxruntime.so (version >= 1.24)",
        format_attempts(.attempts)
    )]
    NotFound { attempts: Vec<(String, String)> },
    #[error("ONNX Runtime library at {path} could not be initialised: {reason}")]
    Init { path: PathBuf, reason: String },
    #[error(
        "the ONNX Runtime library set explicitly ({path}) cannot be used: {reason}; fix the setting or remove it (no other library is tried while one is set)"
    )]
    Explicit { path: PathBuf, reason: String },
}

fn format_attempts(attempts: &[(String, String)]) -> String {
    attempts
        .iter()
        .map(|(place, why)| format!("  - {place}: {why}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where the library was found and the shared environment.
#[derive(Clone)]
pub struct Runtime {
    pub library: PathBuf,
    pub environment: ort::environment::Environment,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("library", &self.library)
            .finish()
    }
}

static RUNTIME: Mutex<Option<Runtime>> = Mutex::new(None);

/// The candidate locations in search order, each with a label for messages.
pub fn candidates(explicit: Option<&Path>) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    if let Some(p) = explicit {
        out.push(("explicit setting".to_owned(), p.to_path_buf()));
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        out.push(("ORT_DYLIB_PATH".to_owned(), PathBuf::from(p)));
    }
    for dir in project_local_dirs() {
        out.push(("project-local folder".to_owned(), dir.join(LIBRARY_NAME)));
    }
    out.push((
        "system library path".to_owned(),
        PathBuf::from(LIBRARY_NAME),
    ));
    out
}

/// The project-local folders: next to an installed executable
/// (`<prefix>/bin/florenced` -> `<prefix>/lib/florence/`), beside the
/// executable, and the checkout this crate was built from.
fn project_local_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(exe) = std::env::current_exe()
        && let Some(bin) = exe.parent()
    {
        dirs.push(bin.join("onnxruntime"));
        if let Some(prefix) = bin.parent() {
            dirs.push(prefix.join("lib/florence"));
        }
    }
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    dirs.push(checkout.join(PROJECT_LOCAL_DIR));
    dirs
}

/// Loads ONNX Runtime (once per process) and returns the shared environment.
///
/// After a successful load, later calls return the same runtime whatever
/// `explicit` says: the process cannot hold two.
pub fn runtime(explicit: Option<&Path>) -> Result<Runtime, RuntimeError> {
    let mut guard = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(rt) = guard.as_ref() {
        return Ok(rt.clone());
    }
    let mut attempts = Vec::new();
    for (label, path) in candidates(explicit) {
        // An explicit setting that fails is an error, never a silent fall-back to
        // another library (the user asked for that one).
        let fail = |reason: String, attempts: &mut Vec<(String, String)>| {
            if explicit.is_some_and(|e| e == path) {
                return Some(RuntimeError::Explicit {
                    path: path.clone(),
                    reason,
                });
            }
            attempts.push((format!("{label} {}", path.display()), reason));
            None
        };
        let is_bare_name = path.components().count() == 1;
        if !is_bare_name && !path.is_file() {
            if let Some(e) = fail("no such file".to_owned(), &mut attempts) {
                return Err(e);
            }
            continue;
        }
        match ort::init_from(&path) {
            Ok(builder) => {
                let environment = builder
                    .with_name("florence")
                    .with_telemetry(false)
                    .build()
                    .map_err(|e| RuntimeError::Init {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                let rt = Runtime {
                    library: path,
                    environment,
                };
                *guard = Some(rt.clone());
                return Ok(rt);
            }
            Err(e) => {
                if let Some(e) = fail(e.to_string(), &mut attempts) {
                    return Err(e);
                }
            }
        }
    }
    Err(RuntimeError::NotFound { attempts })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_order_is_explicit_env_project_system() {
        let c = candidates(Some(Path::new("/opt/ort/libonnxruntime.so")));
        assert_eq!(c[0].0, "explicit setting");
        assert_eq!(c[0].1, Path::new("/opt/ort/libonnxruntime.so"));
        let last = c.last().unwrap();
        assert_eq!(last.0, "system library path");
        assert_eq!(last.1, Path::new(LIBRARY_NAME));
        let checkout = c
            .iter()
            .position(|(_, p)| p.ends_with(Path::new(PROJECT_LOCAL_DIR).join(LIBRARY_NAME)))
            .expect("the checkout's .ort/lib is searched");
        assert!(checkout > 0 && checkout < c.len() - 1);
        if let Some(env) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
            assert_eq!(c[1].1, PathBuf::from(env));
        }
    }

    #[test]
    fn not_found_says_where_it_looked_and_what_to_do() {
        let err = RuntimeError::NotFound {
            attempts: vec![
                ("ORT_DYLIB_PATH /x/lib.so".into(), "no such file".into()),
                (
                    "system library path libonnxruntime.so".into(),
                    "dlopen failed".into(),
                ),
            ],
        };
        let text = err.to_string();
        assert!(
            text.contains("ORT_DYLIB_PATH /x/lib.so: no such file"),
            "{text}"
        );
        assert!(text.contains("dlopen failed"));
        assert!(text.contains("scripts/setup.sh"));
    }
}
