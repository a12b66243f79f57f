//! Optimised graphs saved once and memory-mapped afterwards.
//!
//! ONNX Runtime optimises every graph each time it loads it (fusions, NCHWc
//! layouts) and then pre-packs the weights of its matrix kernels into a second
//! copy. For Florence-2-base at fp32 that costs seconds of start-up and about
//! 300 MB of resident memory beyond the weights: the merged decoder keeps its
//! weights and their packed copies, and the protobuf is held while the
//! initialisers are copied out of it. Saved once with its weights in an
//! external data file, the optimised graph loads without optimising and its
//! weights are mapped from the file: the kernels pack what they use at load
//! and ONNX Runtime releases the mapped originals it packed, so only weights
//! no kernel packs stay mapped, as clean pages the kernel can drop under
//! memory pressure. (Format 1 saved the packed copies too: loading was not
//! faster, and every matrix product reading them from the mapping was slower.)
//!
//! An entry is keyed by everything that decides what ONNX Runtime writes: the
//! source file (path, size, modification time, inode) and the files its
//! external data reads (the batchable decoder's weights are in the merged
//! decoder's file), the ONNX Runtime
//! library (path, size, modification time) and the CPU (its model and
//! instruction-set flags; the NCHWc layouts and packed formats are
//! CPU-specific). A changed model, library or machine gets a new entry. Entries
//! are written in a temporary directory and renamed into place, so concurrent
//! loaders never see half an entry; one that cannot be loaded is removed and
//! rebuilt. A loader holds a lock on its temporary directory while it writes:
//! the next save removes the directory of a loader that died (a SIGKILL, the
//! OOM killer during a first load), whose lock ended with it.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Bumped when what is saved, or how, changes.
const FORMAT: u32 = 2;
/// The optimised graph and its weights inside an entry's directory.
pub(crate) const GRAPH_FILE: &str = "graph.onnx";
pub(crate) const DATA_FILE: &str = "graph.data";
/// The identities of the model file an entry was made from and of the files
/// its external data reads, one a line, for [`sweep`].
const SOURCE_FILE: &str = "source";
/// In a scratch directory: locked by its loader while it writes.
const LOCK_FILE: &str = "lock";
/// A scratch directory without a lock this old belongs to a loader that died.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// Where a graph was loaded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GraphSource {
    /// The model file, optimised while loading (no cache, or it could not be used).
    Model,
    /// The model file, optimised and saved to the cache, then loaded from there.
    Saved,
    /// An optimised graph saved by an earlier load.
    Cached,
}

/// The cache directory used when none is configured: `$FLORENCE_GRAPH_CACHE`,
/// else systemd's `$CACHE_DIRECTORY` (the unit's CacheDirectory=), else
/// `$XDG_CACHE_HOME/florence/graphs`, else `~/.cache/florence/graphs`. An empty
/// `FLORENCE_GRAPH_CACHE` turns the cache off.
pub fn default_dir() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(v) = std::env::var_os("FLORENCE_GRAPH_CACHE") {
        return (!v.is_empty()).then(|| PathBuf::from(v));
    }
    if let Some(dir) = env("CACHE_DIRECTORY") {
        // systemd may list several, separated by ':'; the first is ours.
        let first = dir.to_string_lossy().split(':').next()?.to_owned();
        return Some(PathBuf::from(first).join("graphs"));
    }
    if let Some(xdg) = env("XDG_CACHE_HOME") {
        return Some(PathBuf::from(xdg).join("florence/graphs"));
    }
    env("HOME").map(|h| PathBuf::from(h).join(".cache/florence/graphs"))
}

/// The CPU's identity as far as ONNX Runtime's kernels care: model and flags.
fn cpu_identity() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        // The first processor's block; x86 says "model name"/"flags", ARM
        // "Features"/"CPU implementer"/"CPU part".
        let block = text.split("\n\n").next().unwrap_or_default();
        block
            .lines()
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| {
                matches!(
                    k.trim(),
                    "vendor_id"
                        | "model name"
                        | "flags"
                        | "Features"
                        | "CPU implementer"
                        | "CPU part"
                        | "CPU architecture"
                )
            })
            .map(|(k, v)| format!("{}={}\n", k.trim(), v.trim()))
            .collect::<String>()
            + std::env::consts::ARCH
    })
}

fn file_identity(path: &Path) -> std::io::Result<String> {
    let m = std::fs::metadata(path)?;
    let canonical = std::fs::canonicalize(path)?;
    Ok(format!(
        "{}|{}|{}.{}|{}",
        canonical.display(),
        m.len(),
        m.mtime(),
        m.mtime_nsec(),
        m.ino()
    ))
}

/// The entry directory for `graph` (a model file) under `cache`; `weights`
/// are the other files its external data reads (an entry holds their bytes,
/// so it follows them too).
pub(crate) fn entry_dir(
    cache: &Path,
    graph: &Path,
    weights: &[PathBuf],
    ort_library: &Path,
    settings: &str,
) -> std::io::Result<PathBuf> {
    let mut key = format!(
        "{FORMAT}\n{}\n{}\n{}\n{settings}",
        file_identity(graph)?,
        file_identity(ort_library)?,
        cpu_identity()
    );
    for file in weights {
        key += &format!("\n{}", file_identity(file)?);
    }
    let hash = xxhash_rust::xxh3::xxh3_128(key.as_bytes());
    let stem = graph
        .file_stem()
        .map_or_else(|| "graph".into(), |s| s.to_string_lossy().into_owned());
    Ok(cache.join(format!("{stem}-{hash:032x}")))
}

/// A scratch directory being written, and the lock that tells a sweeping
/// loader that its writer is alive.
pub(crate) struct Scratch {
    pub(crate) dir: PathBuf,
    _lock: Option<std::fs::File>,
}

/// A fresh directory next to the entries, to write the entry for `graph` into
/// before it is renamed into place.
pub(crate) fn scratch_dir(
    cache: &Path,
    graph: &Path,
    weights: &[PathBuf],
) -> std::io::Result<Scratch> {
    std::fs::create_dir_all(cache)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = cache.join(format!(".partial-{}-{nanos}", std::process::id()));
    std::fs::create_dir(&dir)?;
    let fill = || {
        // Locked before it takes the name sweepers look at, so a `lock` that
        // can be locked is one whose process is gone (flock ends with it). A
        // file system without locks gets no `lock`: the age rule applies.
        let pending = dir.join(format!("{LOCK_FILE}.new"));
        let lock = std::fs::File::create(&pending)?;
        let lock = match lock.lock() {
            Ok(()) => {
                std::fs::rename(&pending, dir.join(LOCK_FILE))?;
                Some(lock)
            }
            Err(_) => None,
        };
        let mut sources = vec![file_identity(graph)?];
        for file in weights {
            sources.push(file_identity(file)?);
        }
        std::fs::write(dir.join(SOURCE_FILE), sources.join("\n"))?;
        Ok(lock)
    };
    match fill() {
        Ok(lock) => Ok(Scratch { dir, _lock: lock }),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            Err(e)
        }
    }
}

/// Whether the loader of a scratch directory is gone: its lock can be taken,
/// or, without one (a loader between creating the directory and locking it),
/// the directory is [`ABANDONED_AFTER`] old.
fn abandoned(scratch: &Path) -> bool {
    match std::fs::File::open(scratch.join(LOCK_FILE)) {
        Ok(lock) => lock.try_lock().is_ok(),
        Err(_) => std::fs::metadata(scratch)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > ABANDONED_AFTER),
    }
}

/// Removes the entries whose model file (or a file its weights are read
/// from) is gone or has changed (a replaced model, a deleted copy) and scratch directories of loaders that died, so the
/// cache holds only what can still be used.
pub(crate) fn sweep(cache: &Path) {
    let Ok(dir) = std::fs::read_dir(cache) else {
        return;
    };
    for item in dir.flatten() {
        let path = item.path();
        let name = item.file_name().to_string_lossy().into_owned();
        if name.starts_with(".partial-") {
            if abandoned(&path) {
                let _ = std::fs::remove_dir_all(&path);
            }
            continue;
        }
        let Ok(source) = std::fs::read_to_string(path.join(SOURCE_FILE)) else {
            continue; // not ours
        };
        let changed = source.lines().any(|line| {
            let file = line.split('|').next().unwrap_or_default();
            file_identity(Path::new(file)).ok().as_deref() != Some(line)
        });
        if changed {
            discard(&path);
        }
    }
}

/// Moves a written entry into place. Another loader may have placed the same
/// entry meanwhile: then ours is dropped and theirs used.
pub(crate) fn publish(scratch: &Path, entry: &Path) -> std::io::Result<()> {
    match std::fs::rename(scratch, entry) {
        Ok(()) => Ok(()),
        Err(_) if entry.join(GRAPH_FILE).is_file() => {
            let _ = std::fs::remove_dir_all(scratch);
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(scratch);
            Err(e)
        }
    }
}

/// Removes an entry that could not be loaded, so that the next load rebuilds it.
pub(crate) fn discard(entry: &Path) {
    // Renamed first: a concurrent loader never sees a half-deleted entry.
    let doomed = entry.with_extension(format!("discarded-{}", std::process::id()));
    if std::fs::rename(entry, &doomed).is_ok() {
        let _ = std::fs::remove_dir_all(&doomed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use florence_test_support::scratch::Scratch;

    #[test]
    fn the_key_follows_the_model_file() {
        let dir_scratch = Scratch::new("key");
        let dir = dir_scratch.path();
        let graph = dir.join("g.onnx");
        let lib = dir.join("lib.so");
        std::fs::write(&graph, b"one").unwrap();
        std::fs::write(&lib, b"lib").unwrap();
        let weights = dir.join("w.onnx");
        std::fs::write(&weights, b"w").unwrap();
        let a = entry_dir(dir, &graph, &[], &lib, "").unwrap();
        assert_eq!(a, entry_dir(dir, &graph, &[], &lib, "").unwrap());
        assert!(a.file_name().unwrap().to_string_lossy().starts_with("g-"));
        assert_ne!(a, entry_dir(dir, &graph, &[], &lib, "other").unwrap());
        let b = entry_dir(dir, &graph, std::slice::from_ref(&weights), &lib, "").unwrap();
        assert_ne!(a, b, "the files its external data reads");
        std::fs::write(&weights, b"other weights").unwrap();
        assert_ne!(b, entry_dir(dir, &graph, &[weights], &lib, "").unwrap());
        std::fs::write(&graph, b"longer").unwrap();
        assert_ne!(a, entry_dir(dir, &graph, &[], &lib, "").unwrap());
    }

    #[test]
    fn a_second_publisher_yields_to_the_first() {
        let cache_scratch = Scratch::new("publish");
        let cache = cache_scratch.path();
        let models_scratch = Scratch::new("publish-models");
        let models = models_scratch.path();
        let graph = models.join("g.onnx");
        std::fs::write(&graph, b"one").unwrap();
        let entry = cache.join("g-1");
        for _ in 0..2 {
            let s = scratch_dir(cache, &graph, &[]).unwrap();
            std::fs::write(s.dir.join(GRAPH_FILE), b"x").unwrap();
            publish(&s.dir, &entry).unwrap();
        }
        let names: Vec<_> = std::fs::read_dir(cache).unwrap().collect();
        assert_eq!(names.len(), 1, "no scratch directory left behind");
        discard(&entry);
        assert!(!entry.exists());
    }

    #[test]
    fn scratch_directories_go_once_their_loader_is_gone() {
        let cache_scratch = Scratch::new("scratch");
        let cache = cache_scratch.path();
        let models_scratch = Scratch::new("scratch-models");
        let models = models_scratch.path();
        let graph = models.join("g.onnx");
        std::fs::write(&graph, b"one").unwrap();
        let live = scratch_dir(cache, &graph, &[]).unwrap();
        // A loader that died after locking: its lock file, unlocked.
        let dead = cache.join(".partial-1-1");
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join(LOCK_FILE), b"").unwrap();
        // A loader between creating its directory and locking it.
        let starting = cache.join(".partial-2-2");
        std::fs::create_dir(&starting).unwrap();

        sweep(cache);
        assert!(live.dir.exists(), "a live loader's directory was removed");
        assert!(!dead.exists(), "a dead loader's directory was kept");
        assert!(
            starting.exists(),
            "a starting loader's directory was removed"
        );

        let dir = live.dir.clone();
        drop(live);
        sweep(cache);
        assert!(!dir.exists(), "its lock ended with it");
    }

    #[test]
    fn entries_of_changed_or_deleted_models_are_swept() {
        let cache_scratch = Scratch::new("sweep");
        let cache = cache_scratch.path();
        let models_scratch = Scratch::new("sweep-models");
        let models = models_scratch.path();
        let entry_for = |name: &str| {
            let graph = models.join(name);
            std::fs::write(&graph, b"weights").unwrap();
            let s = scratch_dir(cache, &graph, &[]).unwrap();
            let entry = cache.join(name);
            publish(&s.dir, &entry).unwrap();
            (graph, entry)
        };
        let (_, kept) = entry_for("kept.onnx");
        let (changed, changed_entry) = entry_for("changed.onnx");
        let (deleted, deleted_entry) = entry_for("deleted.onnx");
        // A graph whose external data another file holds: its entry follows both.
        let weights = models.join("weights.onnx");
        std::fs::write(&weights, b"shared weights").unwrap();
        let reader = models.join("reader.onnx");
        std::fs::write(&reader, b"graph").unwrap();
        let s = scratch_dir(cache, &reader, std::slice::from_ref(&weights)).unwrap();
        let reader_entry = cache.join("reader.onnx");
        publish(&s.dir, &reader_entry).unwrap();
        std::fs::write(&changed, b"other weights").unwrap();
        std::fs::remove_file(&deleted).unwrap();
        let foreign = cache.join("not-ours");
        std::fs::create_dir(&foreign).unwrap();
        sweep(cache);
        assert!(kept.exists());
        assert!(foreign.exists());
        assert!(reader_entry.exists(), "its graph and weights unchanged");
        assert!(!changed_entry.exists());
        assert!(!deleted_entry.exists());
        std::fs::write(&weights, b"other shared weights").unwrap();
        sweep(cache);
        assert!(
            !reader_entry.exists(),
            "the file holding its weights changed"
        );
    }
}
