//! What every user of one loaded model directory shares: its configuration
//! files, tokenizer, post-processor and backends (the ONNX Runtime sessions
//! and their weights, or the Hailo device). Immutable once loaded and
//! `Send + Sync`; what each user owns (its vision-feature cache, its VQA
//! template, the interrupt of its running request) is [`super::florence`]'s.
//!
//! One [`Model`] per key and process is [`super::registry`]'s job.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::backend::Backend;
use super::config::ModelFiles;
use super::layout::Layout;
use super::load::{self, LoadOptions};
use super::model_error::{IMAGE_SIZES, ModelError, VARIANTS};
use super::model_files::model_files;
use super::postprocess::{BUILT_IN_CONFIG, PostProcessor};
use super::shared_vision::SharedVision;

/// VQA prompt when the model directory does not configure one (florence.json).
pub const DEFAULT_VQA_TEMPLATE: &str = "<VQA>{question}";

/// A loaded model directory, shared by every [`super::Florence`] made from it.
pub struct Model {
    /// Unique in the process: two users see the same id exactly when they
    /// share one loaded model.
    pub(super) id: u64,
    pub(super) files: ModelFiles,
    pub(super) tokenizer: tokenizers::Tokenizer,
    pub(super) post: PostProcessor,
    /// florence.json's template, each user's until it sets its own.
    pub(super) vqa_template: String,
    pub(super) layout: Layout,
    pub(super) variant: String,
    /// The first one that serves a task runs it (Hailo before ONNX Runtime).
    /// Each runs requests from several threads at once, serialising only
    /// what its runtime or device cannot share.
    pub(super) backends: Vec<Box<dyn Backend>>,
    pub(super) backend_reason: String,
    /// Image features its users share (recent and being encoded).
    pub(super) shared_vision: Arc<SharedVision>,
    /// Requests of all its users running now (queued for a graph included).
    in_flight: AtomicUsize,
}

/// One request counted in [`Model::in_flight`] until dropped.
pub(super) struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("id", &self.id)
            .field("dir", &self.files.dir)
            .field("variant", &self.variant)
            .finish()
    }
}

fn read_json_opt(path: &Path) -> Result<Option<serde_json::Value>, ModelError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
            ModelError::Config(super::config::ConfigError::Invalid {
                path: path.to_path_buf(),
                message: format!("not valid JSON: {e}"),
            })
        }),
        Err(_) => Ok(None),
    }
}

impl Model {
    /// Loads and validates a model directory in either layout, on the
    /// backends `options.backend` chooses.
    pub(super) fn load(dir: &Path, load_options: &LoadOptions) -> Result<Self, ModelError> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let options = &load_options.session;
        if !dir.is_dir() {
            return Err(ModelError::NoDirectory(dir.to_path_buf()));
        }
        if !VARIANTS.contains(&options.variant.as_str()) {
            return Err(ModelError::UnknownVariant(options.variant.clone()));
        }
        let layout = Layout::of(dir);
        let mut files = model_files(dir)?;
        if let Some(size) = options.image_size
            && !layout.has_text_graphs()
            && size != files.preprocessor.size.width
        {
            // The split's vision encoder and HEFs are compiled for one size.
            return Err(ModelError::ImageSize {
                size,
                native: files.preprocessor.size.width,
            });
        }
        if let Some(size) = options.image_size {
            let native = files.preprocessor.size.width;
            if !IMAGE_SIZES.contains(&size) || files.preprocessor.size.height != native {
                return Err(ModelError::ImageSize { size, native });
            }
            files.preprocessor.size.width = size;
            files.preprocessor.size.height = size;
        }
        let tok_path = dir.join("tokenizer.json");
        if !tok_path.is_file() {
            return Err(ModelError::MissingTokenizer {
                path: tok_path,
                reason: "tokenizer.json not found".into(),
            });
        }
        let tokenizer =
            tokenizers::Tokenizer::from_file(&tok_path).map_err(|e| ModelError::Tokenizer {
                path: tok_path.clone(),
                reason: e.to_string(),
            })?;
        let post_cfg = match read_json_opt(&dir.join("post_processor_config.json"))? {
            Some(v) => v,
            None => serde_json::from_str(BUILT_IN_CONFIG).unwrap_or_default(),
        };
        let vqa_template = read_json_opt(&dir.join("florence.json"))?
            .and_then(|v| v.get("vqa_prompt_template")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| DEFAULT_VQA_TEMPLATE.to_owned());
        let chosen = load::backends(&files, layout, load_options)?;
        Ok(Model {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            files,
            tokenizer,
            post: PostProcessor::from_config(&post_cfg),
            vqa_template,
            layout,
            variant: options.variant.clone(),
            backends: chosen.backends,
            backend_reason: chosen.reason,
            shared_vision: Arc::default(),
            in_flight: AtomicUsize::new(0),
        })
    }

    /// The process-unique id of this loaded model.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Requests running on this model now, from all its users.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Requests decoding now in the model's decode batch
    /// ([`super::onnx::scheduler`]), from all its users.
    pub fn decoding(&self) -> usize {
        self.backends.iter().map(|b| b.decoding()).sum()
    }

    /// Decoder runs so far with 1, 2, ... requests together (at index n - 1).
    pub fn decode_steps(&self) -> Vec<u64> {
        let mut steps: Vec<u64> = Vec::new();
        for b in &self.backends {
            let more = b.decode_steps();
            if steps.len() < more.len() {
                steps.resize(more.len(), 0);
            }
            for (total, n) in steps.iter_mut().zip(more) {
                *total += n;
            }
        }
        steps
    }

    /// Counts a request in [`Model::in_flight`] while the guard lives.
    pub(super) fn start_request(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }

    pub fn files(&self) -> &ModelFiles {
        &self.files
    }
}
