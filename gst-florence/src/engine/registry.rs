//! One loaded model per process and key: every element instance and every
//! florenced worker that asks for the same model directory with the same
//! graph-changing options gets the same [`Model`], so N streams on one model
//! pay for its weights once.
//!
//! The registry holds only `Weak` references: a model goes when its last
//! user drops it (READY->NULL, a reload, shutdown). Two callers asking for
//! the same key at once load it once (the second waits for the first); a
//! failed load is not remembered, so the next caller tries again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Weak};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

use super::backend_choice::BackendChoice;
use super::hailo::HailoSettings;
use super::load::LoadOptions;
use super::model::Model;
use super::model_error::ModelError;
use super::onnx::execution_provider::ExecutionProvider;
use super::onnx::session::SessionOptions;

/// Everything that changes what a load makes: two loads with equal keys
/// would make the same graphs, so one serves both. The vision cache and the
/// decode slowdown are each user's (not in the key).
#[derive(Debug, Clone, PartialEq)]
struct Key {
    /// Canonical, so `./m` and `/abs/m` are one model.
    dir: PathBuf,
    /// Name, size and modification time of the directory's files (one
    /// level of subdirectories too): a model replaced on disk is a new key,
    /// so a reload after replacing it loads the new files.
    files: Vec<(PathBuf, u64, Option<SystemTime>)>,
    intra_threads: usize,
    variant: String,
    ort_library: Option<PathBuf>,
    spin: bool,
    image_size: Option<u32>,
    graph_cache: Option<PathBuf>,
    execution_provider: ExecutionProvider,
    backend: BackendChoice,
    hailo: HailoSettings,
    idle_release: Option<Duration>,
}

impl Key {
    fn of(dir: &Path, options: &LoadOptions) -> Key {
        // Destructured in full: a new option must be placed in the key or
        // said to be per user, not silently shared.
        let LoadOptions {
            session,
            backend,
            hailo,
            idle_release,
        } = options;
        let SessionOptions {
            intra_threads,
            variant,
            ort_library,
            spin,
            image_size,
            vision_cache: _,
            decode_slowdown: _,
            graph_cache,
            execution_provider,
        } = session;
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        Key {
            files: fingerprint(&dir),
            dir,
            intra_threads: *intra_threads,
            variant: variant.clone(),
            ort_library: ort_library.clone(),
            // The process pool never spins: on it, `spin` changes nothing.
            spin: *spin && *intra_threads > 0,
            image_size: *image_size,
            graph_cache: graph_cache.clone(),
            execution_provider: execution_provider.clone(),
            backend: *backend,
            hailo: hailo.clone(),
            idle_release: *idle_release,
        }
    }
}

/// The files of `dir` and of its direct subdirectories, sorted; unreadable
/// entries are left out (the load itself reports what is missing).
fn fingerprint(dir: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut files = Vec::new();
    for sub in list(dir, &mut files) {
        list(&sub, &mut files);
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}

/// Adds the files of `dir` to `files`; returns its subdirectories. Followed
/// through symlinks: a linked model file is its target.
fn list(dir: &Path, files: &mut Vec<(PathBuf, u64, Option<SystemTime>)>) -> Vec<PathBuf> {
    let mut subdirs = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return subdirs;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            subdirs.push(path);
        } else if meta.is_file() {
            files.push((path, meta.len(), meta.modified().ok()));
        }
    }
    subdirs
}

struct Entry {
    key: Key,
    slot: Arc<Slot>,
}

/// One key's model. `loading` is held while the model loads, so a second
/// caller of the same key waits for the first instead of loading again;
/// `model` only for a moment, so [`loaded`] never waits for a load nor
/// misses a model another caller looks at.
#[derive(Default)]
struct Slot {
    loading: Mutex<()>,
    model: Mutex<Weak<Model>>,
}

static ENTRIES: LazyLock<Mutex<Vec<Entry>>> = LazyLock::new(|| Mutex::new(Vec::new()));

/// How [`acquire`] got its model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acquired {
    /// This call loaded it (else it joined a model already loaded).
    pub loaded: bool,
}

/// The loaded model for `dir` and `options`: the one already loaded for the
/// same key if it still has a user, else loaded now.
pub(super) fn acquire(
    dir: &Path,
    options: &LoadOptions,
) -> Result<(Arc<Model>, Acquired), ModelError> {
    let key = Key::of(dir, options);
    let slot = {
        let mut entries = ENTRIES.lock();
        // Forget keys nobody uses or is loading (a loader holds the slot).
        entries
            .retain(|e| Arc::strong_count(&e.slot) > 1 || e.slot.model.lock().strong_count() > 0);
        match entries.iter().find(|e| e.key == key) {
            Some(e) => e.slot.clone(),
            None => {
                let slot = Arc::new(Slot::default());
                entries.push(Entry {
                    key,
                    slot: slot.clone(),
                });
                slot
            }
        }
    };
    let _loading = slot.loading.lock();
    if let Some(model) = slot.model.lock().upgrade() {
        return Ok((model, Acquired { loaded: false }));
    }
    let model = Arc::new(Model::load(dir, options)?);
    *slot.model.lock() = Arc::downgrade(&model);
    Ok((model, Acquired { loaded: true }))
}

/// A model loaded in this process, as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedModel {
    pub id: u64,
    pub dir: PathBuf,
    /// Handles using it now.
    pub users: usize,
    /// Requests running on it now, from all its users.
    pub in_flight: usize,
    /// Of those, the ones decoding now in its decode batch.
    pub decoding: usize,
    /// Decoder runs so far with 1, 2, ... requests together (at index n - 1).
    pub decode_steps: Vec<u64>,
}

/// The models loaded through the registry that still have users.
pub fn loaded() -> Vec<LoadedModel> {
    let slots: Vec<_> = ENTRIES.lock().iter().map(|e| e.slot.clone()).collect();
    slots
        .iter()
        .filter_map(|slot| {
            // A slot being loaded has no model yet.
            let weak = slot.model.lock().clone();
            let users = weak.strong_count();
            let model = weak.upgrade()?;
            Some(LoadedModel {
                id: model.id,
                dir: model.files.dir.clone(),
                users,
                in_flight: model.in_flight(),
                decoding: model.decoding(),
                decode_steps: model.decode_steps(),
            })
        })
        .collect()
}
