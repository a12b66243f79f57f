//! Opening one graph of a model directory as a validated ONNX Runtime
//! session: the session options, threads, the optimised-graph cache and the
//! signature check.

use std::path::{Path, PathBuf};

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;

use super::error::OnnxError;
use super::execution_provider::{self, ExecutionProvider};
use super::graph_cache::{self, GraphSource};
use super::runtime::Runtime;
use super::signature::{self, Dims, Graph, GraphSpec};
use crate::engine::config::ModelFiles;
use crate::engine::layout::Layout;

/// How to open the graphs.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// 0: the graphs run on the process's one intra-op pool
    /// ([`crate::engine::runtime::pool_threads`], shared by every model and
    /// stream); N: each graph gets a pool of N threads of its own, outside
    /// that budget.
    pub intra_threads: usize,
    /// File suffix of the variant to load (`""`, `"_quantized"`, `"_fp16"`, ...).
    pub variant: String,
    /// Explicit path of libonnxruntime.so, tried before the other places.
    pub ort_library: Option<PathBuf>,
    /// Let idle intra-op threads of a graph's own pool spin for work (ONNX
    /// Runtime's default): slightly faster inference, but it burns the CPU
    /// time a live video pipeline needs. The process pool never spins.
    pub spin: bool,
    /// Square input resolution in pixels ([`crate::engine::model_error::IMAGE_SIZES`]); `None`: the model's own
    /// (preprocessor_config.json).
    pub image_size: Option<u32>,
    /// Keep the last image's vision features for the next request on the same
    /// image (off: every run encodes its image, as a benchmark needs).
    pub vision_cache: bool,
    /// How much slower a decoder run shared with other requests may be than
    /// a request's run alone, at least 1 ([`super::join_bound`]): a request
    /// that would slow itself or a member of the model's decode batch down
    /// more waits for members to leave; its decoding is held for requests
    /// still encoding at most `decode_slowdown - 1` times its decoding
    /// alone. 1: never shares a run, never held. Each user's own (its
    /// requests carry it).
    pub decode_slowdown: f64,
    /// Directory of optimised graphs saved once and mapped at later loads
    /// ([`graph_cache`]); `None`: optimise at every load, weights in anonymous memory.
    pub graph_cache: Option<PathBuf>,
    /// The execution provider the graphs run on (the CPU by default); one the
    /// loaded library does not offer fails the load, naming what it offers.
    pub execution_provider: ExecutionProvider,
}

impl SessionOptions {
    /// The intra-op threads a run of these graphs gets: the process pool's
    /// for `intra_threads` 0, else that many, at most the CPUs this process
    /// may use (what a benchmark reports beside its figures).
    pub fn effective_threads(&self) -> usize {
        match self.intra_threads {
            0 => super::runtime::pool_threads(),
            n => crate::engine::cpus::usable_threads(n),
        }
    }
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            intra_threads: 0,
            variant: String::new(),
            ort_library: None,
            spin: true,
            image_size: None,
            vision_cache: true,
            decode_slowdown: super::join_bound::DEFAULT_DECODE_SLOWDOWN,
            graph_cache: graph_cache::default_dir(),
            execution_provider: ExecutionProvider::cpu(),
        }
    }
}

/// The path of a graph's file in `dir`.
pub fn graph_path(dir: &Path, graph: Graph, variant: &str) -> PathBuf {
    let suffix = if graph.subdir() == "onnx" {
        variant
    } else {
        ""
    };
    let name = format!("{}{suffix}.onnx", graph.stem());
    match Layout::of(dir) {
        // Its one ONNX graph, the vision encoder, sits beside the HEFs.
        Layout::HailoFlorence if graph == Graph::VisionEncoder => dir.join(name),
        _ => dir.join(graph.subdir()).join(name),
    }
}

/// Whether `dir` has the batchable decoder's graphs for `variant` (the
/// engine then decodes through them instead of the merged decoder).
pub fn has_batched_decoder(dir: &Path, variant: &str) -> bool {
    Graph::BATCHED
        .iter()
        .all(|&g| graph_path(dir, g, variant).is_file())
}

impl ModelFiles {
    pub fn dims(&self) -> Dims {
        let t = &self.model.text_config;
        Dims {
            d_model: t.d_model,
            decoder_layers: t.decoder_layers,
            decoder_heads: t.decoder_attention_heads,
            head_dim: self.model.decoder_head_dim(),
            vocab_size: t.vocab_size,
        }
    }
}

/// ONNX Runtime's session messages as `tracing` events (target `onnxruntime`).
fn ort_log(level: ort::logging::LogLevel, category: &str, id: &str, location: &str, message: &str) {
    use ort::logging::LogLevel;
    match level {
        LogLevel::Error | LogLevel::Fatal => {
            tracing::error!(target: "onnxruntime", category, id, location, "{message}")
        }
        LogLevel::Warning => {
            tracing::warn!(target: "onnxruntime", category, id, location, "{message}")
        }
        LogLevel::Info => {
            tracing::info!(target: "onnxruntime", category, id, location, "{message}")
        }
        LogLevel::Verbose => {
            tracing::debug!(target: "onnxruntime", category, id, location, "{message}")
        }
    }
}

/// A session builder with the engine's settings, at optimisation `level`.
fn builder(
    runtime: &Runtime,
    options: &SessionOptions,
    level: GraphOptimizationLevel,
) -> ort::Result<ort::session::builder::SessionBuilder> {
    let mut builder = Session::builder(&runtime.environment)?
        .with_optimization_level(level)
        .map_err(ort::Error::<()>::from)?
        // ONNX Runtime's own messages go to `tracing` (the daemon's log), not raw to
        // stderr; failures also come back as errors, reported with their context.
        .with_log_level(ort::logging::LogLevel::Warning)
        .map_err(ort::Error::<()>::from)?
        .with_logger(std::sync::Arc::new(ort_log))
        .map_err(ort::Error::<()>::from)?;
    let own_pool = options.intra_threads > 0;
    if own_pool {
        builder = builder
            .with_independent_thread_pool()
            .map_err(ort::Error::<()>::from)?
            .with_intra_threads(crate::engine::cpus::usable_threads(options.intra_threads))
            .map_err(ort::Error::<()>::from)?;
    }
    // ONNX Runtime's memory pattern plans one block for all of a run's
    // intermediate tensors and allocates it from the second run on, beside
    // what the arena already holds from the first: for the base model's vision
    // encoder at 768 that is about 350 MB more resident memory (1.75 GB against
    // 1.41 GB after a few captions) and measured no faster (2.32-2.54 s per
    // caption either way, interleaved).
    builder = builder
        .with_memory_pattern(false)
        .map_err(ort::Error::<()>::from)?;
    if own_pool && !options.spin {
        builder = builder
            .with_intra_op_spinning(false)
            .map_err(ort::Error::<()>::from)?;
    }
    if runtime.shared_arena {
        builder = builder
            .with_config_entry(super::shared_arena::USE_ENV_ALLOCATORS, "1")
            .map_err(ort::Error::<()>::from)?;
    }
    let provider = &options.execution_provider;
    if !provider.is_cpu() {
        execution_provider::register(&mut builder, provider).map_err(|e| {
            ort::Error::new(format!(
                "cannot use the execution provider {provider} ({}): {e}",
                provider.name()
            ))
        })?;
    }
    Ok(builder)
}

/// `Ok` when the loaded library offers `provider` (the CPU it always does).
fn check_provider(runtime: &Runtime, provider: &ExecutionProvider) -> Result<(), OnnxError> {
    if provider.is_cpu() {
        return Ok(());
    }
    let requested = format!("execution provider {provider} ({})", provider.name());
    let available =
        execution_provider::available().map_err(|reason| OnnxError::ExecutionProvider {
            requested: requested.clone(),
            library: runtime.library.clone(),
            reason,
        })?;
    if available.iter().any(|p| p == provider.name()) {
        return Ok(());
    }
    Err(OnnxError::ExecutionProviderMissing {
        requested,
        library: runtime.library.clone(),
        available,
    })
}

/// Opens `path` optimised at load, or through the optimised-graph cache when
/// `options.graph_cache` names one (see [`graph_cache`]). A cache that cannot
/// be written or read is not an error: the model file is loaded as without it.
fn open_session(
    runtime: &Runtime,
    path: &Path,
    weights: &[PathBuf],
    options: &SessionOptions,
) -> Result<(Session, GraphSource), OnnxError> {
    let load = |e: ort::Error| OnnxError::Load {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    check_provider(runtime, &options.execution_provider)?;
    let direct = || {
        builder(runtime, options, GraphOptimizationLevel::Level3)
            .and_then(|mut b| b.commit_from_file(path))
            .map(|s| (s, GraphSource::Model))
            .map_err(load)
    };
    let Some(cache) = options.graph_cache.as_deref() else {
        return direct();
    };
    // Graphs optimised for another provider differ: each has its own entries.
    let provider = &options.execution_provider;
    let settings = if provider.is_cpu() {
        ""
    } else {
        provider.name()
    };
    let entry = match graph_cache::entry_dir(cache, path, weights, &runtime.library, settings) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!("graph cache {}: {e}; loading without it", cache.display());
            return direct();
        }
    };
    // Pre-optimised: loading optimises nothing more.
    let cached = |entry: &Path| {
        builder(runtime, options, GraphOptimizationLevel::Disable)
            .and_then(|mut b| b.commit_from_file(entry.join(graph_cache::GRAPH_FILE)))
    };
    if entry.join(graph_cache::GRAPH_FILE).is_file() {
        match cached(&entry) {
            Ok(s) => return Ok((s, GraphSource::Cached)),
            Err(e) => {
                tracing::warn!("{}: unusable ({e}); rebuilding it", entry.display());
                graph_cache::discard(&entry);
            }
        }
    }
    graph_cache::sweep(cache);
    let scratch = match graph_cache::scratch_dir(cache, path, weights) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!("graph cache {}: {e}; loading without it", cache.display());
            return direct();
        }
    };
    let saved = builder(runtime, options, GraphOptimizationLevel::Level3)
        .and_then(|b| {
            b.with_optimized_model_path(scratch.dir.join(graph_cache::GRAPH_FILE))
                .map_err(ort::Error::<()>::from)
        })
        .and_then(|b| {
            b.with_config_entry(
                "session.optimized_model_external_initializers_file_name",
                graph_cache::DATA_FILE,
            )
            .map_err(ort::Error::<()>::from)
        })
        .and_then(|b| {
            // Weights go to the data file, which is mapped, not read; small
            // constants (shapes, axes) stay inline, where shape inference reads them.
            b.with_config_entry(
                "session.optimized_model_external_initializers_min_size_in_bytes",
                "1024",
            )
            .map_err(ort::Error::<()>::from)
        })
        // The kernels' packed copies of the weights are not saved with them
        // (`session.save_external_prepacked_constant_initializers`): read from the
        // mapped file they made every matrix product slower (base model, 768,
        // interleaved: 2.2 against 2.0 s in the vision encoder, 21 against 18 ms
        // per token), while packing at load took no longer (1.8 against 2.5 s
        // to load) for the same peak memory (1350 MiB after two captions), since
        // ONNX Runtime releases the mapped originals once packed.
        .and_then(|mut b| b.commit_from_file(path));
    let session = match saved {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&scratch.dir);
            return Err(load(e));
        }
    };
    // Published with its lock held; the lock goes with `scratch` after.
    if let Err(e) = graph_cache::publish(&scratch.dir, &entry) {
        tracing::warn!("graph cache {}: {e}; loading without it", cache.display());
        return Ok((session, GraphSource::Model));
    }
    // Loaded again from the entry, so the weights are mapped from its file and
    // this first run behaves as every later one. The saving session goes first:
    // both at once would be the largest footprint of all.
    drop(session);
    match cached(&entry) {
        Ok(s) => Ok((s, GraphSource::Saved)),
        Err(e) => {
            tracing::warn!("{}: cannot load what was saved ({e})", entry.display());
            graph_cache::discard(&entry);
            direct()
        }
    }
}

/// Opens one graph and checks its signature.
pub fn open_graph(
    runtime: &Runtime,
    files: &ModelFiles,
    graph: Graph,
    options: &SessionOptions,
) -> Result<Session, OnnxError> {
    open_graph_from(runtime, files, graph, options).map(|(s, _)| s)
}

/// [`open_graph`], also saying where the graph came from.
pub fn open_graph_from(
    runtime: &Runtime,
    files: &ModelFiles,
    graph: Graph,
    options: &SessionOptions,
) -> Result<(Session, GraphSource), OnnxError> {
    let path = graph_path(&files.dir, graph, &options.variant);
    if !path.is_file() {
        return Err(OnnxError::MissingGraph { path, graph });
    }
    let weights: Vec<PathBuf> = graph
        .weights_from()
        .map(|g| graph_path(&files.dir, g, &options.variant))
        .into_iter()
        .collect();
    let (session, source) = open_session(runtime, &path, &weights, options)?;
    let spec = GraphSpec::new(graph, &files.dims());
    let (inputs, outputs) = signature::ports(&session);
    let problems = signature::check(&spec, &inputs, &outputs);
    if !problems.is_empty() {
        return Err(OnnxError::Signature {
            path,
            graph,
            problems,
        });
    }
    Ok((session, source))
}
