//! Finding and loading the ONNX Runtime shared library.
//!
//! `ort` is built with `load-dynamic`: nothing is linked or downloaded at
//! build time. The library is looked up, in order, at
//! 1. an explicit path (element property / daemon configuration),
//! 2. `ORT_DYLIB_PATH`,
//! 3. folders found from where the running program is, never from where it
//!    was built: `onnxruntime/` beside the executable (or beside this plugin's
//!    shared object), the folder of the plugin's real file (links resolved: the
//!    installed plugin is a link to `<prefix>/lib/florence/libgstflorence.so`),
//!    `<prefix>/lib/florence/` for `<prefix>/bin/florenced`, and
//!    for a program inside a cargo `target/` directory the checkout's `.ort/lib`
//!    that `scripts/setup.sh` fills from the pinned PyPI wheel. A folder that
//!    another user could have planted (under a world-writable directory and not
//!    owned by root or us) is skipped,
//! 4. the system library search path (`dlopen("libonnxruntime.so")`).
//!
//! ONNX Runtime allows one environment per process, so the first successful
//! load wins and every later caller shares it. The environment holds the
//! process's one thread budget: ONNX Runtime's global intra-op pool
//! ([`pool_threads`] threads, not spinning), which every graph opened with
//! `threads` 0 runs on, whatever model and stream it belongs to.

use ort::environment::GlobalThreadPoolOptions;
use parking_lot::Mutex;
use std::path::{Path, PathBuf};

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
    /// Sessions allocate from one shared arena ([`super::shared_arena`]).
    pub shared_arena: bool,
    /// Threads of the process-wide intra-op pool.
    pub pool_threads: usize,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("library", &self.library)
            .field("pool_threads", &self.pool_threads)
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
        let path = dir.join(LIBRARY_NAME);
        if planted_by_nobody_else(&path) {
            out.push(("project-local folder".to_owned(), path));
        }
    }
    out.push((
        "system library path".to_owned(),
        PathBuf::from(LIBRARY_NAME),
    ));
    out
}

/// The project-local folders, relative to the executable and to the shared
/// object holding this code (the plugin, when GStreamer loaded it): no path
/// known at build time is searched, so an installed binary never looks into the
/// checkout or the temporary directory it was built in.
fn project_local_dirs() -> Vec<PathBuf> {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|e| e.canonicalize().ok());
    let module = this_module().and_then(|m| m.canonicalize().ok());
    let anchors = [
        exe.as_deref().and_then(Path::parent),
        module.as_deref().and_then(Path::parent),
    ];
    // The plugin as installed (systemd/install.sh, the Debian package): its real
    // file sits in <prefix>/lib/florence/ beside ONNX Runtime, and GStreamer's
    // plugin directory holds a link to it, so the folder of the plugin's real
    // file is searched (not the executable's: no library beside /usr/bin/x).
    let module_own_dir = module
        .as_deref()
        .filter(|m| Some(*m) != exe.as_deref())
        .and_then(Path::parent);
    let mut dirs: Vec<PathBuf> = Vec::new();
    for dir in anchors.iter().flatten() {
        let mut here = vec![dir.join("onnxruntime")];
        if Some(*dir) == module_own_dir {
            here.push(dir.to_path_buf());
        }
        if let Some(prefix) = dir.parent() {
            here.push(prefix.join("lib/florence"));
        }
        if let Some(checkout) = cargo_checkout(dir) {
            here.push(checkout.join(PROJECT_LOCAL_DIR));
        }
        for d in here {
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
    }
    dirs
}

/// The file of the executable or shared object this function is in.
pub(crate) fn this_module() -> Option<PathBuf> {
    module_of(this_module as *const () as *const std::ffi::c_void)
}

/// The file of the executable or shared object holding `addr` (a function or
/// a symbol of a loaded library).
#[cfg(unix)]
pub(crate) fn module_of(addr: *const std::ffi::c_void) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: dladdr only reads the loader's tables; a zeroed Dl_info is valid
    // to pass, and dli_fname (when set) points at a NUL-terminated string the
    // loader owns for as long as the module is loaded.
    let name = unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(addr, &mut info) == 0 || info.dli_fname.is_null() {
            return None;
        }
        std::ffi::CStr::from_ptr(info.dli_fname)
    };
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(name.to_bytes())))
}

#[cfg(not(unix))]
pub(crate) fn module_of(_addr: *const std::ffi::c_void) -> Option<PathBuf> {
    None
}

/// The checkout a program was built in when it runs from cargo's output:
/// `<root>/target/<profile>[/deps|/examples]` or `<root>/target/<triple>/<profile>[...]`,
/// with `<root>/Cargo.toml` present.
pub fn cargo_checkout(dir: &Path) -> Option<PathBuf> {
    let mut d = dir;
    if matches!(d.file_name()?.to_str()?, "deps" | "examples") {
        d = d.parent()?;
    }
    for _ in 0..2 {
        d = d.parent()?;
        if d.file_name()? == "target" {
            let root = d.parent()?;
            return root
                .join("Cargo.toml")
                .is_file()
                .then(|| root.to_path_buf());
        }
    }
    None
}

/// Whether nobody but root and us could have put `path` there: no directory on
/// the way is writable by others, except sticky ones (like /tmp) whose entry on
/// the way exists and is owned by root or us. Checked on the path as written and
/// with its symbolic links resolved.
#[cfg(unix)]
pub fn planted_by_nobody_else(path: &Path) -> bool {
    safe_components(path)
        && path
            .canonicalize()
            .map_or(true, |resolved| safe_components(&resolved))
}

#[cfg(unix)]
fn safe_components(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let mut under_shared_dir = false;
    let mut prefix = PathBuf::new();
    for part in path.components() {
        prefix.push(part);
        let Ok(meta) = std::fs::symlink_metadata(&prefix) else {
            // Missing: nothing to load, unless someone else may create it meanwhile.
            return !under_shared_dir;
        };
        if under_shared_dir && meta.uid() != 0 && meta.uid() != me {
            return false;
        }
        let others_write = meta.mode() & 0o002 != 0 && !meta.file_type().is_symlink();
        let sticky = meta.mode() & 0o1000 != 0;
        if others_write && !(meta.is_dir() && sticky) {
            return false;
        }
        under_shared_dir = others_write;
    }
    true
}

#[cfg(not(unix))]
pub fn planted_by_nobody_else(_path: &Path) -> bool {
    true
}

/// The process's thread budget: one intra-op thread per physical core of the
/// CPUs it may run on (the caller of a run is one of them). Measured on 2
/// cores (docs: performance, "Many streams on one model"): one pool of 2
/// served 1, 2 and 4 streams faster than every graph's own 2 threads.
pub fn pool_threads() -> usize {
    crate::engine::cpus::default_threads()
}

/// The global intra-op pool: idle threads do not spin, since streams share
/// it with the video and with each other (spinning measured within noise for
/// a single stream on a quiet machine, and a collapse on a busy one).
fn global_pool(threads: usize) -> ort::Result<GlobalThreadPoolOptions> {
    GlobalThreadPoolOptions::default()
        .with_intra_threads(threads)?
        .with_inter_threads(1)?
        .with_spin_control(false)
}

/// Loads ONNX Runtime (once per process) and returns the shared environment.
///
/// After a successful load, later calls return the same runtime whatever
/// `explicit` says: the process cannot hold two.
pub fn runtime(explicit: Option<&Path>) -> Result<Runtime, RuntimeError> {
    let mut guard = RUNTIME.lock();
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
                let init = |e: ort::Error| RuntimeError::Init {
                    path: path.clone(),
                    reason: e.to_string(),
                };
                let pool_threads = pool_threads();
                let environment = builder
                    .with_name("florence")
                    .with_telemetry(false)
                    .with_global_thread_pool(global_pool(pool_threads).map_err(init)?)
                    .build()
                    .map_err(init)?;
                let shared_arena = match super::shared_arena::register(&environment) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!("no shared memory arena ({e}): each session keeps its own");
                        false
                    }
                };
                let rt = Runtime {
                    library: path,
                    environment,
                    shared_arena,
                    pool_threads,
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
    fn the_checkout_is_found_only_from_a_cargo_target_directory() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let root = root.canonicalize().unwrap();
        for sub in [
            "target/debug",
            "target/release/deps",
            "target/x86_64-unknown-linux-gnu/release",
            "target/debug/examples",
        ] {
            assert_eq!(cargo_checkout(&root.join(sub)), Some(root.clone()), "{sub}");
        }
        for dir in [
            "/usr/local/bin",
            "/usr/lib/x86_64-linux-gnu/gstreamer-1.0",
            "/",
        ] {
            assert_eq!(cargo_checkout(Path::new(dir)), None, "{dir}");
        }
        // A `target` directory that is not a cargo project's.
        let tmp = florence_test_support::scratch::Scratch::new("ort-no-cargo");
        std::fs::create_dir_all(tmp.path().join("target/release")).unwrap();
        assert_eq!(cargo_checkout(&tmp.path().join("target/release")), None);
    }

    #[cfg(unix)]
    #[test]
    fn a_library_others_could_have_planted_is_not_searched() {
        use std::os::unix::fs::PermissionsExt;
        let scratch = florence_test_support::scratch::Scratch::new("ort-planted");
        let base = scratch.path();
        let ours = base.join("ours");
        std::fs::create_dir_all(&ours).unwrap();
        std::fs::write(ours.join(LIBRARY_NAME), b"").unwrap();
        assert!(planted_by_nobody_else(&ours.join(LIBRARY_NAME)));
        assert!(planted_by_nobody_else(
            &ours.join("missing").join(LIBRARY_NAME)
        ));
        // A world-writable folder without the sticky bit: anyone could swap the file.
        let open = base.join("open");
        std::fs::create_dir_all(&open).unwrap();
        std::fs::write(open.join(LIBRARY_NAME), b"").unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(!planted_by_nobody_else(&open.join(LIBRARY_NAME)));
        // A link from our folder into it does not launder it.
        std::os::unix::fs::symlink(open.join(LIBRARY_NAME), ours.join("link.so")).unwrap();
        assert!(!planted_by_nobody_else(&ours.join("link.so")));
        // A sticky world-writable folder (like /tmp): what we own there is ours;
        // a name not taken yet could be taken by anyone.
        let shared = base.join("shared");
        std::fs::create_dir_all(shared.join("mine")).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(planted_by_nobody_else(
            &shared.join("mine").join(LIBRARY_NAME)
        ));
        assert!(!planted_by_nobody_else(
            &shared.join("free").join(LIBRARY_NAME)
        ));
        // Back to removable by the scratch directory's clean-up.
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
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
