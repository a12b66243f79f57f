//! The whole Florence-2 pipeline on ONNX Runtime: preprocess, vision encoder,
//! prompt embedding, text encoder once, merged decoder with a key/value cache,
//! decoding, post-processing.
//!
//! One [`Florence`] is shared between threads; its sessions sit behind one
//! mutex, so requests on the same instance run one after another (each
//! already uses `intra_threads` cores). Load several instances for parallel
//! requests.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ort::session::{RunOptions, Session, SessionInputValue};
use ort::value::{DynValue, Tensor, TensorElementType, ValueType};
use serde::Serialize;

use super::config::{EarlyStopping, ModelFiles};
use super::generate::{self, DecodeParams, Decoded, Sampling, StepModel};
use super::graph_cache::GraphSource;
use super::layout::{Layout, model_files};
use super::model_dir::{self, ModelError, SessionOptions, VARIANTS};
use super::postprocess::{PostProcessor, TaskResult};
use super::preprocess::{self, RgbImage};
use super::signature::{Graph, cache_names};
use super::task::{PromptError, Task, TaskInput, build_prompt};

/// VQA prompt when the model directory does not configure one (florence.json).
pub const DEFAULT_VQA_TEMPLATE: &str = "<VQA>{question}";

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Prompt(#[from] PromptError),
    #[error(transparent)]
    Image(#[from] preprocess::ImageError),
    #[error("invalid parameter: {0}")]
    Parameter(String),
    #[error("tokenizer failed: {0}")]
    Tokenizer(String),
    #[error("ONNX Runtime failed in {stage}: {message}")]
    Inference {
        stage: &'static str,
        message: String,
    },
    #[error("{stage}: model output {name} is malformed: {message}")]
    Output {
        stage: &'static str,
        name: String,
        message: String,
    },
    /// The run was stopped by its [`Interrupt`] before it finished.
    #[error("{0}")]
    Interrupted(Interruption),
    /// The Hailo device failed (busy, lost, wrong HEF, ...).
    #[error(transparent)]
    Device(#[from] super::hailo::HailoError),
    /// The model directory cannot run this task (hailo-florence's layout runs
    /// only `<CAPTION>`, on the device).
    #[error("{task} cannot run on {dir}: {reason}")]
    TaskUnavailable {
        task: &'static str,
        dir: PathBuf,
        reason: &'static str,
    },
}

/// Ends the deadline timer thread when dropped.
struct DeadlineTimer {
    _stop: std::sync::mpsc::Sender<()>,
}

/// Why a run stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Interruption {
    #[error("the request's deadline passed before inference finished")]
    DeadlineExceeded,
    #[error("the request was cancelled")]
    Cancelled,
}

/// Stops a run early: at a deadline, or when [`Interrupt::cancel`] is called
/// from another thread. The deadline is checked before each stage and before
/// every decoder step (one decoder pass for all beams), and a cancel or the
/// deadline also terminates the ONNX Runtime run in progress (the vision
/// encoder or text encoder), so either takes effect within milliseconds.
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    deadline: Option<Instant>,
    inner: Arc<InterruptInner>,
}

#[derive(Default)]
struct InterruptInner {
    cancelled: AtomicBool,
    /// The run options of the run in progress, terminated by a cancel.
    run_options: Mutex<Option<Arc<RunOptions>>>,
}

impl std::fmt::Debug for InterruptInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterruptInner")
            .field("cancelled", &self.cancelled.load(Ordering::SeqCst))
            .finish()
    }
}

impl Interrupt {
    /// Never stops unless cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops the run once `deadline` has passed.
    pub fn with_deadline(deadline: Instant) -> Self {
        Interrupt {
            deadline: Some(deadline),
            ..Self::default()
        }
    }

    /// Asks the run (and every clone of this handle) to stop now.
    pub fn cancel(&self) {
        let run_options = self
            .inner
            .run_options
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.inner.cancelled.store(true, Ordering::SeqCst);
        if let Some(o) = run_options.as_ref() {
            let _ = o.terminate();
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// When the run must have finished, if ever.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Run options for this run's ONNX Runtime calls; a cancel terminates them.
    fn run_options(&self) -> Result<Arc<RunOptions>, EngineError> {
        let options = Arc::new(RunOptions::new().map_err(ort_err("run options"))?);
        let mut slot = self
            .inner
            .run_options
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if self.is_cancelled() {
            let _ = options.terminate();
        }
        *slot = Some(options.clone());
        Ok(options)
    }

    /// With a deadline: a timer thread that terminates `options` when it passes
    /// (ended when the returned guard is dropped).
    fn arm(&self, options: &Arc<RunOptions>) -> Option<DeadlineTimer> {
        let deadline = self.deadline?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let options = options.clone();
        std::thread::Builder::new()
            .name("florence-deadline".into())
            .spawn(move || {
                let wait = deadline.saturating_duration_since(Instant::now());
                if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(wait)
                {
                    let _ = options.terminate();
                }
            })
            .ok()?;
        Some(DeadlineTimer { _stop: stop })
    }

    /// An ONNX Runtime failure caused by a cancel or the deadline is that.
    fn explain(&self, e: EngineError) -> EngineError {
        match e {
            EngineError::Inference { .. } if self.is_cancelled() => {
                EngineError::Interrupted(Interruption::Cancelled)
            }
            EngineError::Inference { .. } if self.deadline.is_some_and(|d| Instant::now() >= d) => {
                EngineError::Interrupted(Interruption::DeadlineExceeded)
            }
            e => e,
        }
    }

    /// `Err` once cancelled or past the deadline.
    pub fn check(&self) -> Result<(), EngineError> {
        if self.is_cancelled() {
            return Err(EngineError::Interrupted(Interruption::Cancelled));
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(EngineError::Interrupted(Interruption::DeadlineExceeded));
        }
        Ok(())
    }
}

pub(crate) fn ort_err(stage: &'static str) -> impl Fn(ort::Error) -> EngineError {
    move |e| EngineError::Inference {
        stage,
        message: e.to_string(),
    }
}

/// Per-request generation settings; `None` takes the model's generation_config.json.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationOptions {
    pub max_new_tokens: Option<usize>,
    pub min_new_tokens: Option<usize>,
    pub num_beams: Option<usize>,
    /// 0 or None: deterministic decoding; > 0: sampling at this temperature.
    pub temperature: Option<f32>,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    pub seed: Option<u64>,
    pub no_repeat_ngram_size: Option<usize>,
    pub length_penalty: Option<f32>,
    pub early_stopping: Option<EarlyStopping>,
}

/// Hard ceiling on new tokens per request (the decoder's position table bounds it too).
pub const MAX_NEW_TOKENS_LIMIT: usize = 4096;
/// Default when neither the request nor generation_config.json says (Florence-2 callers use 1024).
pub const DEFAULT_MAX_NEW_TOKENS: usize = 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub task: Task,
    pub input: TaskInput,
    pub options: GenerationOptions,
}

impl Request {
    pub fn new(task: Task) -> Self {
        Request {
            task,
            input: TaskInput::default(),
            options: GenerationOptions::default(),
        }
    }
}

/// Wall time of each stage of one request.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub preprocess_ms: f64,
    pub vision_ms: f64,
    /// The image's vision features came from the previous run on the same image.
    pub vision_cached: bool,
    pub encoder_ms: f64,
    pub first_token_ms: f64,
    pub per_token_ms: f64,
    /// Of `per_token_ms`, the time inside ONNX Runtime (token embedding and
    /// decoder runs); the rest is the engine's own work per token (logits
    /// processing, beam bookkeeping, building the inputs).
    pub per_token_runtime_ms: f64,
    pub decode_ms: f64,
    pub postprocess_ms: f64,
    pub total_ms: f64,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

#[derive(Debug, Clone, Serialize)]
pub struct Output {
    pub task: String,
    /// Decoded generation with special tokens, as the reference's batch_decode gives it.
    pub raw_text: String,
    pub result: TaskResult,
    /// The decoder sequence (decoder start token first), as `generate` returns it.
    pub ids: Vec<u32>,
    /// Generated tokens, start token excluded.
    pub token_count: usize,
    /// Greedy decoding: per step margin between the best and second-best processed score.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub margins: Vec<Option<f32>>,
    pub image_size: [u32; 2],
    pub timings: Timings,
}

struct Sessions {
    vision: Session,
    embed: Session,
    encoder: Session,
    decoder: Session,
    /// The last image's vision features and its key ([`image_key`]): several tasks
    /// on one image (or consecutive requests on one frame) run the vision encoder once.
    last_vision: Option<(u128, Features)>,
}

/// Identifies an image's content: a 128-bit hash of its size and pixels.
fn image_key(image: &RgbImage) -> u128 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&image.width.to_le_bytes());
    h.update(&image.height.to_le_bytes());
    h.update(&image.data);
    h.digest128()
}

/// A loaded Florence-2 model directory.
pub struct Florence {
    files: ModelFiles,
    tokenizer: tokenizers::Tokenizer,
    post: PostProcessor,
    vqa_template: String,
    /// None in hailo-florence's layout, which has no ONNX text graphs.
    sessions: Mutex<Option<Sessions>>,
    layout: Layout,
    options: SessionOptions,
    /// The graphs take float16 activations (`_fp16` variants).
    float16: bool,
    sources: Vec<(Graph, GraphSource)>,
    /// Captions run on a Hailo device (see [`super::hailo_caption`]).
    hailo: Option<super::hailo_caption::HailoCaptioner>,
}

impl std::fmt::Debug for Florence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Florence")
            .field("dir", &self.files.dir)
            .field("variant", &self.options.variant)
            .finish()
    }
}

/// The four ONNX graphs of an onnx-community directory, opened.
struct Opened {
    sessions: Sessions,
    /// The graphs take float16 activations.
    float16: bool,
    sources: Vec<(Graph, GraphSource)>,
}

/// Opens the four ONNX graphs of an onnx-community directory.
fn open_sessions(
    dir: &Path,
    files: &ModelFiles,
    options: &SessionOptions,
) -> Result<Opened, ModelError> {
    let runtime = super::runtime::runtime(options.ort_library.as_deref())?;
    let mut kinds = Vec::new();
    let mut sources = Vec::new();
    let mut open = |g| -> Result<Session, ModelError> {
        let (s, source) = model_dir::open_graph_from(&runtime, files, g, options)?;
        sources.push((g, source));
        if g != Graph::EmbedTokens {
            kinds.push((
                g,
                float16_inputs(&s, model_dir::graph_path(dir, g, &options.variant))?,
            ));
        }
        Ok(s)
    };
    // The decoder first: loading a graph briefly needs more memory than it
    // keeps (most for the merged decoder), and that peak is lowest while
    // nothing else is resident.
    let decoder = open(Graph::DecoderMerged)?;
    let encoder = open(Graph::Encoder)?;
    let embed = open(Graph::EmbedTokens)?;
    let vision = open(Graph::VisionEncoder)?;
    let sessions = Sessions {
        vision,
        embed,
        encoder,
        decoder,
        last_vision: None,
    };
    // Reported in the usual order: vision encoder, embedding, encoder, decoder.
    let rank = |g: &Graph| Graph::ONNX_COMMUNITY.iter().position(|x| x == g);
    kinds.sort_by_key(|k| rank(&k.0));
    sources.sort_by_key(|k| rank(&k.0));
    let float16 = kinds.first().is_some_and(|k| k.1);
    if let Some((g, _)) = kinds.iter().find(|k| k.1 != float16) {
        return Err(ModelError::Load {
            path: model_dir::graph_path(dir, *g, &options.variant),
            reason: "its float inputs differ in precision from the vision encoder's".into(),
        });
    }
    Ok(Opened {
        sessions,
        float16,
        sources,
    })
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

/// The default post-processor settings of the converted Florence-2 checkpoints.
const DEFAULT_POST_PROCESSOR_CONFIG: &str =
    include_str!("../../../tests/fixtures/reference-configs/florence2-post-processor-config.json");

impl Florence {
    /// Loads and validates a model directory (onnx-community layout).
    pub fn load(dir: &Path, options: SessionOptions) -> Result<Self, ModelError> {
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
            if !model_dir::IMAGE_SIZES.contains(&size) || files.preprocessor.size.height != native {
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
            None => serde_json::from_str(DEFAULT_POST_PROCESSOR_CONFIG).unwrap_or_default(),
        };
        let vqa_template = read_json_opt(&dir.join("florence.json"))?
            .and_then(|v| v.get("vqa_prompt_template")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| DEFAULT_VQA_TEMPLATE.to_owned());
        // hailo-florence's layout has no ONNX text graphs: its captions come
        // from the Hailo split, attached by the caller.
        let (sessions, float16, sources) = if layout.has_text_graphs() {
            let o = open_sessions(dir, &files, &options)?;
            (Some(o.sessions), o.float16, o.sources)
        } else {
            (None, false, Vec::new())
        };
        Ok(Florence {
            files,
            tokenizer,
            post: PostProcessor::from_config(&post_cfg),
            vqa_template,
            sessions: Mutex::new(sessions),
            layout,
            options,
            float16,
            sources,
            hailo: None,
        })
    }

    /// Runs `<CAPTION>` requests on the Hailo split from now on.
    pub fn attach_hailo(&mut self, captioner: super::hailo_caption::HailoCaptioner) {
        self.hailo = Some(captioner);
    }

    /// The directory's layout: hailo-florence's runs only captions, on a
    /// Hailo split that must be attached.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Whether `task` can run on this model directory at all.
    pub fn check_task(&self, task: Task) -> Result<(), EngineError> {
        if self.layout.has_text_graphs() || task == Task::Caption {
            return Ok(());
        }
        Err(EngineError::TaskUnavailable {
            task: task.token(),
            dir: self.files.dir.clone(),
            reason: "this directory has hailo-florence's layout (HEFs, no ONNX text graphs), \
                     which runs only <CAPTION> on a Hailo device; other tasks need a model in \
                     the onnx-community layout",
        })
    }

    /// The Hailo split, when captions run on it.
    pub fn hailo(&self) -> Option<&super::hailo_caption::HailoCaptioner> {
        self.hailo.as_ref()
    }

    /// Florence2PostProcessor's result for a generated text.
    pub fn post_process(&self, task: Task, raw_text: &str, width: u32, height: u32) -> TaskResult {
        self.post.parse(task.parse_kind(), raw_text, width, height)
    }

    /// Drops the kept vision features ([`SessionOptions::vision_cache`]), so the
    /// next run encodes its image again even if it is the same one.
    pub fn forget_vision(&self) {
        let mut guard = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = guard.as_mut() {
            s.last_vision = None;
        }
    }

    /// Where each graph was loaded from (the optimised-graph cache or the model file).
    pub fn graph_sources(&self) -> &[(Graph, GraphSource)] {
        &self.sources
    }

    pub fn files(&self) -> &ModelFiles {
        &self.files
    }

    pub fn vqa_template(&self) -> &str {
        &self.vqa_template
    }

    /// Replaces the VQA prompt template (it must contain `{question}`).
    pub fn set_vqa_template(&mut self, template: &str) -> Result<(), PromptError> {
        if !template.contains("{question}") {
            return Err(PromptError::BadVqaTemplate(template.to_owned()));
        }
        self.vqa_template = template.to_owned();
        Ok(())
    }

    /// Token ids of `<s>` + prompt + `</s>`, as the reference processor produces them.
    pub fn prompt_ids(
        &self,
        task: Task,
        input: &TaskInput,
        width: u32,
        height: u32,
    ) -> Result<Vec<u32>, EngineError> {
        self.check_task(task)?;
        let prompt = build_prompt(task, input, width, height, &self.vqa_template)?;
        let bos = self.token_text(self.files.model.text_config.bos_token_id)?;
        let eos = self.token_text(self.files.model.text_config.eos_token_id)?;
        let enc = self
            .tokenizer
            .encode(format!("{bos}{prompt}{eos}"), false)
            .map_err(|e| EngineError::Tokenizer(e.to_string()))?;
        let ids = enc.get_ids().to_vec();
        // The text encoder's learned positions cover image tokens and prompt together;
        // a longer input would index past its position table inside ONNX Runtime.
        let positions = self.files.model.text_config.max_position_embeddings;
        let image_tokens = self.files.preprocessor.num_image_tokens();
        let limit = positions.saturating_sub(image_tokens);
        if ids.len() > limit {
            return Err(PromptError::TooManyTokens {
                prompt_tokens: ids.len(),
                limit,
                positions,
                image_tokens,
            }
            .into());
        }
        Ok(ids)
    }

    fn token_text(&self, id: u32) -> Result<String, EngineError> {
        self.tokenizer.id_to_token(id).ok_or_else(|| {
            EngineError::Tokenizer(format!("token id {id} is not in the vocabulary"))
        })
    }

    /// Decodes ids with special tokens kept, as `batch_decode(skip_special_tokens=False)`.
    pub fn decode_ids(&self, ids: &[u32]) -> Result<String, EngineError> {
        let vocab = self.tokenizer.get_vocab_size(true) as u32;
        let known: Vec<u32> = ids.iter().copied().filter(|&i| i < vocab).collect();
        self.tokenizer
            .decode(&known, false)
            .map_err(|e| EngineError::Tokenizer(e.to_string()))
    }

    /// Decoding parameters for a request, defaults from generation_config.json.
    pub fn decode_params(&self, o: &GenerationOptions) -> Result<DecodeParams, EngineError> {
        let g = &self.files.generation;
        let t = &self.files.model.text_config;
        let max_new_tokens = o
            .max_new_tokens
            .or(g.max_new_tokens)
            .unwrap_or(DEFAULT_MAX_NEW_TOKENS);
        if max_new_tokens == 0 || max_new_tokens > MAX_NEW_TOKENS_LIMIT {
            return Err(EngineError::Parameter(format!(
                "max_new_tokens must be 1..={MAX_NEW_TOKENS_LIMIT}, got {max_new_tokens}"
            )));
        }
        // The decoder's learned positions bound the sequence (start token included).
        let max_new_tokens = max_new_tokens.min(t.max_position_embeddings.saturating_sub(1).max(1));
        let min_new_tokens = o.min_new_tokens.unwrap_or(0);
        if min_new_tokens > max_new_tokens {
            return Err(EngineError::Parameter(format!(
                "min_new_tokens {min_new_tokens} exceeds max_new_tokens {max_new_tokens}"
            )));
        }
        let num_beams = o.num_beams.unwrap_or(g.num_beams).max(1);
        if num_beams > 16 {
            return Err(EngineError::Parameter(format!(
                "num_beams must be 1..=16, got {num_beams}"
            )));
        }
        let sampling = match o.temperature {
            Some(t) if !t.is_finite() || t < 0.0 => {
                return Err(EngineError::Parameter(format!(
                    "temperature must be >= 0, got {t}"
                )));
            }
            Some(t) if t > 0.0 => {
                let top_p = o.top_p.unwrap_or(1.0);
                if !(top_p > 0.0 && top_p <= 1.0) {
                    return Err(EngineError::Parameter(format!(
                        "top_p must be in (0, 1], got {top_p}"
                    )));
                }
                Some(Sampling {
                    temperature: t,
                    top_k: o.top_k.unwrap_or(50),
                    top_p,
                    seed: o.seed.unwrap_or_else(|| {
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_nanos() as u64)
                    }),
                })
            }
            _ => None,
        };
        let length_penalty = o.length_penalty.unwrap_or(g.length_penalty);
        if !length_penalty.is_finite() {
            return Err(EngineError::Parameter(
                "length_penalty must be finite".into(),
            ));
        }
        Ok(DecodeParams {
            max_new_tokens,
            min_new_tokens,
            num_beams,
            no_repeat_ngram_size: o.no_repeat_ngram_size.unwrap_or(g.no_repeat_ngram_size),
            length_penalty,
            early_stopping: o.early_stopping.unwrap_or(g.early_stopping),
            decoder_start: g.decoder_start_token_id.unwrap_or(t.decoder_start_token_id),
            eos: g.eos_token_id.unwrap_or(t.eos_token_id),
            pad: g.pad_token_id.unwrap_or(t.pad_token_id),
            forced_bos: g.forced_bos_token_id,
            forced_eos: g.forced_eos_token_id,
            sampling,
        })
    }

    /// Runs one request on one image.
    pub fn run(&self, image: &RgbImage, req: &Request) -> Result<Output, EngineError> {
        self.run_with(image, req, &Interrupt::new())
    }

    /// [`Florence::run`] that stops early with [`EngineError::Interrupted`]
    /// when `interrupt` is cancelled or its deadline passes (also while it
    /// waits for another run on this instance to finish).
    pub fn run_with(
        &self,
        image: &RgbImage,
        req: &Request,
        interrupt: &Interrupt,
    ) -> Result<Output, EngineError> {
        interrupt.check()?;
        if let Some(hailo) = self.hailo.as_ref().filter(|h| h.serves(req)) {
            return hailo.run(self, image, req, interrupt);
        }
        let t0 = Instant::now();
        let params = self.decode_params(&req.options)?;
        let prompt = self.prompt_ids(req.task, &req.input, image.width, image.height)?;
        let key = image_key(image);
        let cached = |s: &Option<Sessions>| {
            s.as_ref()
                .and_then(|s| s.last_vision.as_ref())
                .is_some_and(|(k, _)| *k == key)
        };
        // Preprocess before taking the lock (another run may hold it for seconds),
        // unless the features are cached; a busy lock counts as not cached.
        let maybe_cached = match self.sessions.try_lock() {
            Ok(s) => cached(&s),
            Err(std::sync::TryLockError::Poisoned(p)) => cached(&p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => false,
        };
        let mut pixels =
            (!maybe_cached).then(|| preprocess::pixel_values(image, &self.files.preprocessor));
        let mut timings = Timings {
            preprocess_ms: ms(t0.elapsed()),
            ..Timings::default()
        };
        let mut guard = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let Some(s) = guard.as_mut() else {
            // Captions of hailo-florence's layout with no split attached.
            return Err(EngineError::TaskUnavailable {
                task: req.task.token(),
                dir: self.files.dir.clone(),
                reason: "hailo-florence's layout runs captions only on a Hailo device, \
                         and none is attached",
            });
        };
        let run_options = interrupt.run_options()?;
        let _timer = interrupt.arm(&run_options);

        interrupt.check()?;
        let t = Instant::now();
        let features = match s.last_vision.take() {
            Some((k, features)) if k == key => {
                timings.vision_cached = true;
                features
            }
            _ => {
                let (pixels, shape) = pixels
                    .take()
                    .unwrap_or_else(|| preprocess::pixel_values(image, &self.files.preprocessor));
                run_vision(&mut s.vision, pixels, shape, self.float16, &run_options)
                    .map_err(|e| interrupt.explain(e))?
            }
        };
        timings.vision_ms = ms(t.elapsed());

        interrupt.check()?;
        let t = Instant::now();
        let encoded = self.encode(s, &features, &prompt, &run_options);
        if self.options.vision_cache {
            s.last_vision = Some((key, features));
        }
        let (hidden, enc_len) = encoded.map_err(|e| interrupt.explain(e))?;
        timings.encoder_ms = ms(t.elapsed());

        let t = Instant::now();
        let mut step = OnnxDecoder::new(s, hidden, enc_len, &self.files, self.float16, interrupt)?;
        let decoded: Decoded = generate::decode(&mut step, &params)?;
        let first = step.first_step.unwrap_or_default();
        let later_runs = step.runtime.saturating_sub(step.first_step_runtime);
        drop(step);
        drop(guard);
        let decode_time = t.elapsed();
        timings.decode_ms = ms(decode_time);
        timings.first_token_ms = ms(first);
        let steps = decoded.ids.len().saturating_sub(1);
        if steps > 1 {
            timings.per_token_ms = ms((decode_time.saturating_sub(first)) / (steps as u32 - 1));
            timings.per_token_runtime_ms = ms(later_runs / (steps as u32 - 1));
        }

        let t = Instant::now();
        let raw_text = self.decode_ids(&decoded.ids)?;
        let result = self
            .post
            .parse(req.task.parse_kind(), &raw_text, image.width, image.height);
        timings.postprocess_ms = ms(t.elapsed());
        timings.total_ms = ms(t0.elapsed());
        Ok(Output {
            task: req.task.token().to_owned(),
            raw_text,
            result,
            token_count: steps,
            ids: decoded.ids,
            margins: decoded.margins,
            image_size: [image.width, image.height],
            timings,
        })
    }

    /// Embeds the prompt, concatenates it after the image features and runs the text encoder.
    fn encode(
        &self,
        s: &mut Sessions,
        features: &Features,
        prompt: &[u32],
        run_options: &RunOptions,
    ) -> Result<(DynValue, usize), EngineError> {
        let ids: Vec<i64> = prompt.iter().map(|&i| i as i64).collect();
        let embeds = run_embed(&mut s.embed, &ids, 1)?;
        let d = features.dim;
        let total = features.tokens + prompt.len();
        let mut joined = Vec::with_capacity(total * d);
        joined.extend_from_slice(&features.data);
        joined.extend_from_slice(&embeds);
        let input = float_tensor("encoder", vec![1, total, d], joined, self.float16)?;
        let mask =
            Tensor::from_array(([1usize, total], vec![1i64; total])).map_err(ort_err("encoder"))?;
        let mut out = s
            .encoder
            .run_with_options(
                ort::inputs! {"attention_mask" => mask, "inputs_embeds" => input},
                run_options,
            )
            .map_err(ort_err("encoder"))?;
        let hidden = out
            .remove("last_hidden_state")
            .ok_or_else(|| missing("encoder", "last_hidden_state"))?;
        check_shape(
            "encoder",
            "last_hidden_state",
            &hidden,
            &[1, total as i64, d as i64],
        )?;
        Ok((hidden, total))
    }
}

/// Whether a graph takes float16 activations (the `_fp16` variants), checked to be
/// consistent over all its float inputs.
fn float16_inputs(session: &Session, path: PathBuf) -> Result<bool, ModelError> {
    let mut kinds = session.inputs().iter().filter_map(|i| match i.dtype() {
        ValueType::Tensor { ty, .. } if *ty == TensorElementType::Float16 => Some(true),
        ValueType::Tensor { ty, .. } if *ty == TensorElementType::Float32 => Some(false),
        _ => None,
    });
    let first = kinds.next().unwrap_or(false);
    if kinds.any(|k| k != first) {
        return Err(ModelError::Load {
            path,
            reason: "mixes float16 and float32 inputs".into(),
        });
    }
    Ok(first)
}

/// A float tensor in the element type the graph takes.
fn float_tensor(
    stage: &'static str,
    shape: Vec<usize>,
    data: Vec<f32>,
    f16: bool,
) -> Result<DynValue, EngineError> {
    if f16 {
        let half: Vec<half::f16> = data.into_iter().map(half::f16::from_f32).collect();
        Ok(Tensor::from_array((shape, half))
            .map_err(ort_err(stage))?
            .into_dyn())
    } else {
        Ok(Tensor::from_array((shape, data))
            .map_err(ort_err(stage))?
            .into_dyn())
    }
}

/// Shape and values of a float32 or float16 tensor, as f32.
fn float_values(stage: &'static str, v: &DynValue) -> Result<(Vec<i64>, Vec<f32>), EngineError> {
    let mut out = Vec::new();
    let shape = float_values_into(stage, v, &mut out)?;
    Ok((shape, out))
}

/// Same, into a reused buffer (the decoder's logits, every token).
fn float_values_into(
    stage: &'static str,
    v: &DynValue,
    out: &mut Vec<f32>,
) -> Result<Vec<i64>, EngineError> {
    out.clear();
    if let Ok((shape, data)) = v.try_extract_tensor::<f32>() {
        out.extend_from_slice(data);
        return Ok(shape.iter().copied().collect());
    }
    let (shape, data) = v
        .try_extract_tensor::<half::f16>()
        .map_err(ort_err(stage))?;
    out.extend(data.iter().map(|x| x.to_f32()));
    Ok(shape.iter().copied().collect())
}

/// Rows `parents` of a tensor along its first axis, in its own element type.
fn gather_rows(v: &DynValue, parents: &[usize]) -> Result<DynValue, EngineError> {
    fn gather<T: ort::value::PrimitiveTensorElementType + Clone + std::fmt::Debug + 'static>(
        v: &DynValue,
        parents: &[usize],
    ) -> Option<Result<DynValue, EngineError>> {
        let (shape, data) = v.try_extract_tensor::<T>().ok()?;
        let mut dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        let row = data.len() / dims[0].max(1);
        let mut out = Vec::with_capacity(parents.len() * row);
        for &p in parents {
            out.extend_from_slice(&data[p * row..(p + 1) * row]);
        }
        dims[0] = parents.len();
        Some(
            Tensor::from_array((dims, out))
                .map(|t| t.into_dyn())
                .map_err(ort_err("decoder")),
        )
    }
    gather::<f32>(v, parents)
        .or_else(|| gather::<half::f16>(v, parents))
        .unwrap_or_else(|| Err(missing("decoder", "past key/value of a float type")))
}

pub(crate) fn missing(stage: &'static str, name: &str) -> EngineError {
    EngineError::Output {
        stage,
        name: name.to_owned(),
        message: "not produced".into(),
    }
}

fn check_shape(
    stage: &'static str,
    name: &str,
    v: &DynValue,
    want: &[i64],
) -> Result<(), EngineError> {
    let got: Vec<i64> = match v.dtype() {
        ValueType::Tensor { shape, .. } => shape.iter().copied().collect(),
        _ => vec![],
    };
    if got != want {
        return Err(EngineError::Output {
            stage,
            name: name.to_owned(),
            message: format!("shape {got:?}, expected {want:?}"),
        });
    }
    Ok(())
}

pub(crate) struct Features {
    pub(crate) data: Vec<f32>,
    pub(crate) tokens: usize,
    pub(crate) dim: usize,
}

pub(crate) fn run_vision(
    session: &mut Session,
    pixels: Vec<f32>,
    shape: [usize; 4],
    f16: bool,
    run_options: &RunOptions,
) -> Result<Features, EngineError> {
    let input = float_tensor("vision encoder", shape.to_vec(), pixels, f16)?;
    let out = session
        .run_with_options(ort::inputs! {"pixel_values" => input}, run_options)
        .map_err(ort_err("vision encoder"))?;
    let v = out
        .get("image_features")
        .ok_or_else(|| missing("vision encoder", "image_features"))?;
    let (shape, data) = float_values("vision encoder", v)?;
    if shape.len() != 3 || shape[0] != 1 || data.iter().any(|x| !x.is_finite()) {
        return Err(EngineError::Output {
            stage: "vision encoder",
            name: "image_features".into(),
            message: format!("shape {shape:?} or non-finite values"),
        });
    }
    Ok(Features {
        data,
        tokens: shape[1] as usize,
        dim: shape[2] as usize,
    })
}

fn run_embed(session: &mut Session, ids: &[i64], rows: usize) -> Result<Vec<f32>, EngineError> {
    let cols = ids.len() / rows.max(1);
    let input =
        Tensor::from_array(([rows, cols], ids.to_vec())).map_err(ort_err("embed tokens"))?;
    let out = session
        .run(ort::inputs! {"input_ids" => input})
        .map_err(ort_err("embed tokens"))?;
    let v = out
        .get("inputs_embeds")
        .ok_or_else(|| missing("embed tokens", "inputs_embeds"))?;
    Ok(float_values("embed tokens", v)?.1)
}

/// The merged decoder driven step by step, its cache fed back without copies
/// (reordered along the batch only when beams change parents).
struct OnnxDecoder<'a> {
    s: &'a mut Sessions,
    hidden: DynValue,
    enc_len: usize,
    d_model: usize,
    heads: usize,
    head_dim: usize,
    layers: usize,
    vocab: usize,
    /// Per layer: decoder key, decoder value (grow each step).
    past: Vec<DynValue>,
    /// Per layer: encoder key, encoder value (from the first step).
    enc_kv: Vec<DynValue>,
    logits: Vec<f32>,
    float16: bool,
    /// Encoder states and mask repeated for the current batch, built once per batch size.
    encoder_batch: Option<(usize, DynValue, DynValue)>,
    first_step: Option<Duration>,
    /// Time spent inside ONNX Runtime runs, all steps, and in the first step's.
    runtime: Duration,
    first_step_runtime: Duration,
    /// Checked before every step.
    interrupt: &'a Interrupt,
    past_names: Vec<[String; 4]>,
    present_names: Vec<[String; 4]>,
}

impl<'a> OnnxDecoder<'a> {
    fn new(
        s: &'a mut Sessions,
        hidden: DynValue,
        enc_len: usize,
        files: &ModelFiles,
        float16: bool,
        interrupt: &'a Interrupt,
    ) -> Result<Self, EngineError> {
        let t = &files.model.text_config;
        let layers = t.decoder_layers;
        Ok(OnnxDecoder {
            s,
            hidden,
            enc_len,
            d_model: t.d_model,
            heads: t.decoder_attention_heads,
            head_dim: files.model.decoder_head_dim(),
            layers,
            vocab: t.vocab_size,
            past: Vec::new(),
            enc_kv: Vec::new(),
            logits: Vec::new(),
            float16,
            encoder_batch: None,
            first_step: None,
            runtime: Duration::ZERO,
            first_step_runtime: Duration::ZERO,
            interrupt,
            past_names: (0..layers)
                .map(|i| cache_names("past_key_values", i))
                .collect(),
            present_names: (0..layers).map(|i| cache_names("present", i)).collect(),
        })
    }

    /// Encoder states and mask repeated for `batch` hypotheses.
    fn encoder_inputs(&self, batch: usize) -> Result<(DynValue, DynValue), EngineError> {
        let (_, data) = float_values("decoder", &self.hidden)?;
        let mut rep = Vec::with_capacity(batch * data.len());
        for _ in 0..batch {
            rep.extend_from_slice(&data);
        }
        let states = float_tensor(
            "decoder",
            vec![batch, self.enc_len, self.d_model],
            rep,
            self.float16,
        )?;
        let mask = Tensor::from_array(([batch, self.enc_len], vec![1i64; batch * self.enc_len]))
            .map_err(ort_err("decoder"))?
            .into_dyn();
        Ok((states, mask))
    }

    /// Gathers rows of the decoder cache along the batch axis.
    fn reorder(&mut self, parents: &[usize]) -> Result<(), EngineError> {
        if parents.iter().enumerate().all(|(i, &p)| i == p) {
            return Ok(());
        }
        for v in &mut self.past {
            *v = gather_rows(v, parents)?;
        }
        Ok(())
    }
}

impl StepModel for OnnxDecoder<'_> {
    type Error = EngineError;

    fn step(&mut self, tokens: &[u32], parents: Option<&[usize]>) -> Result<&[f32], EngineError> {
        self.interrupt.check()?;
        let t0 = Instant::now();
        let n = tokens.len();
        let first = parents.is_none();
        if let Some(p) = parents {
            self.reorder(p)?;
        }
        let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
        let run_start = Instant::now();
        let embeds = run_embed(&mut self.s.embed, &ids, n)?;
        let mut in_runtime = run_start.elapsed();
        let embeds = float_tensor("decoder", vec![n, 1, self.d_model], embeds, self.float16)?;
        if self.encoder_batch.as_ref().is_none_or(|(b, _, _)| *b != n) {
            let (states, mask) = self.encoder_inputs(n)?;
            self.encoder_batch = Some((n, states, mask));
        }
        let Some((_, states, mask)) = self.encoder_batch.as_ref() else {
            return Err(missing("decoder", "encoder_hidden_states"));
        };
        let use_cache = Tensor::from_array(([1usize], vec![!first]))
            .map_err(ort_err("decoder"))?
            .into_dyn();
        let empty = |s: &Self| {
            float_tensor(
                "decoder",
                vec![n, s.heads, 0, s.head_dim],
                Vec::new(),
                s.float16,
            )
        };
        let mut placeholders = Vec::new();
        if first {
            for _ in 0..4 * self.layers {
                placeholders.push(empty(self)?);
            }
        }
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = vec![
            (Cow::Borrowed("encoder_attention_mask"), mask.into()),
            (Cow::Borrowed("encoder_hidden_states"), states.into()),
            (Cow::Borrowed("inputs_embeds"), (&embeds).into()),
            (Cow::Borrowed("use_cache_branch"), (&use_cache).into()),
        ];
        for (i, names) in self.past_names.iter().enumerate() {
            for (j, name) in names.iter().enumerate() {
                let v: &DynValue = if first {
                    &placeholders[4 * i + j]
                } else if j < 2 {
                    &self.past[2 * i + j]
                } else {
                    &self.enc_kv[2 * i + j - 2]
                };
                inputs.push((Cow::Borrowed(name.as_str()), v.into()));
            }
        }
        let run_start = Instant::now();
        let mut out = self.s.decoder.run(inputs).map_err(ort_err("decoder"))?;
        in_runtime += run_start.elapsed();
        self.runtime += in_runtime;
        let logits = out
            .remove("logits")
            .ok_or_else(|| missing("decoder", "logits"))?;
        let mut new_past = Vec::with_capacity(2 * self.layers);
        let mut new_enc = Vec::new();
        for names in &self.present_names {
            for (j, name) in names.iter().enumerate() {
                let v = out.remove(name).ok_or_else(|| missing("decoder", name))?;
                if j < 2 {
                    new_past.push(v);
                } else if first {
                    new_enc.push(v);
                }
            }
        }
        drop(out);
        self.past = new_past;
        if first {
            self.enc_kv = new_enc;
        }
        let shape = float_values_into("decoder", &logits, &mut self.logits)?;
        if shape.len() != 3
            || shape[0] as usize != n
            || shape[1] != 1
            || shape[2] as usize != self.vocab
        {
            return Err(EngineError::Output {
                stage: "decoder",
                name: "logits".into(),
                message: format!("shape {shape:?}, expected [{n}, 1, {}]", self.vocab),
            });
        }
        if first {
            self.first_step = Some(t0.elapsed());
            self.first_step_runtime = in_runtime;
        }
        Ok(&self.logits)
    }

    fn vocab(&self) -> usize {
        self.vocab
    }
}
