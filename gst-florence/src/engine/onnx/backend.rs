//! The ONNX Runtime backend: the four graphs of an onnx-community directory
//! (vision encoder, token embedding, text encoder, merged decoder with a
//! key/value cache), every task, decoded by [`crate::engine::generate`].
//!
//! One backend serves every user of a shared model ([`crate::engine::registry`])
//! with one copy of the weights. Requests run at the same time, each with its
//! own activations, key/value cache and run options (its interrupt), but one
//! graph runs one call at a time: `ort` 2.0.0-rc.15's `Session::run` takes
//! `&mut self` (and has no `&self` run) because some execution providers'
//! allocators are not thread safe, so each graph is taken in
//! [`Turns`](crate::engine::turns), first come first served, for one run
//! only. Two streams therefore overlap across graphs (one's vision encoder
//! while the other decodes) rather than one request holding the whole model
//! until it ends. With the batchable decoder the decode steps of the
//! requests in flight run as one batch ([`super::scheduler`]: one run, one
//! turn, for all of them); with the merged decoder they alternate token by
//! token, so no stream's steps starve another's.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ort::session::{RunOptions, Session};
use ort::value::{DynValue, Tensor};

use super::batched::{Admitted, Batch, BatchedGraphs, DecodeStats, Sequence, Shape, Stepper};
use super::decoder::OnnxDecoder;
use super::error::OnnxError;
use super::graph_cache::GraphSource;
use super::loading;
use super::scheduler::{Arriving, DecodeScheduler};
use super::session::{self, SessionOptions};
use super::signature::Graph;
use super::tensors::{
    check_shape, float_tensor, float16_inputs, ort_err, run_embed, run_options, run_vision,
};
use crate::engine::backend::{Backend, Generated, Job};
use crate::engine::backend_choice::BackendKind;
use crate::engine::config::ModelFiles;
use crate::engine::error::{EngineError, missing};
use crate::engine::generate;
use crate::engine::interrupt::{Interrupt, Wake};
use crate::engine::model_error::ModelError;
use crate::engine::output::{Timings, ms};
use crate::engine::preprocess;
use crate::engine::shared_vision::{Claim, Encoding, SharedVision};
use crate::engine::task::Task;
use crate::engine::turns::Turns;
use crate::engine::vision_cache::{Features, image_key};

/// The graphs, each taken in turn for one run at a time.
struct Sessions {
    vision: Turns<Session>,
    embed: Turns<Session>,
    encoder: Turns<Session>,
    decoder: DecoderGraphs,
}

/// The decoder: the batchable decoder's two graphs when the directory has
/// them (their weights are bytes of the merged decoder's file, which is then
/// not opened: one copy of the decoder's weights in memory), else the merged
/// decoder.
enum DecoderGraphs {
    Merged(Turns<Session>),
    Batched(BatchedGraphs),
}

impl Sessions {
    /// What a cancel wakes: the queues a request may be waiting in.
    fn queues(&self) -> Vec<Arc<dyn Wake>> {
        let mut queues = vec![&self.vision, &self.embed, &self.encoder];
        match &self.decoder {
            DecoderGraphs::Merged(decoder) => queues.push(decoder),
            DecoderGraphs::Batched(b) => queues.extend([&b.cross, &b.step]),
        }
        queues
            .into_iter()
            .map(|t| t.waker() as Arc<dyn Wake>)
            .collect()
    }
}

/// The ONNX graphs of a model directory, opened.
pub struct OnnxBackend {
    files: ModelFiles,
    sessions: Sessions,
    /// The graphs take float16 activations (`_fp16` variants).
    float16: bool,
    sources: Vec<(Graph, GraphSource)>,
    /// With the batchable decoder: the decode steps of the requests in
    /// flight, run as one batch.
    scheduler: Arc<DecodeScheduler>,
}

impl std::fmt::Debug for OnnxBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxBackend")
            .field("dir", &self.files.dir)
            .field("float16", &self.float16)
            .finish()
    }
}

impl OnnxBackend {
    /// Opens the four graphs of `files.dir` (at the image size `files` has).
    pub fn open(files: &ModelFiles, options: &SessionOptions) -> Result<Self, ModelError> {
        let o = open_sessions(&files.dir, files, options)?;
        Ok(OnnxBackend {
            files: files.clone(),
            sessions: o.sessions,
            float16: o.float16,
            sources: o.sources,
            scheduler: Arc::default(),
        })
    }

    /// An empty batch of requests that decode together, when the model
    /// directory has the batchable decoder ([`super::batched`]).
    pub fn batch<K>(&self) -> Option<Batch<'_, K>> {
        let DecoderGraphs::Batched(graphs) = &self.sessions.decoder else {
            return None;
        };
        let shape = Shape::of(&self.files);
        Some(Batch::new(Stepper::new(
            &self.sessions.embed,
            graphs,
            shape,
            self.float16,
        )))
    }

    /// Runs a job's vision and text encoders and the cross keys and values:
    /// the request, ready to join a [`Batch`].
    pub fn admit(&self, job: &Job<'_>, interrupt: &Interrupt) -> Result<Admitted, EngineError> {
        let DecoderGraphs::Batched(graphs) = &self.sessions.decoder else {
            return Err(missing("decoder", Graph::DecoderBatched.stem()));
        };
        let (run_options, _timer) = run_options(interrupt, self.wakers(job.shared_vision))?;
        let mut timings = Timings::default();
        let mut waited = Duration::ZERO;
        let (hidden, _) =
            self.encode_job(job, (&run_options, interrupt), &mut timings, &mut waited)?;
        let shape = Shape::of(&self.files);
        let (sequence, _) = Sequence::new(graphs, &hidden, shape, self.float16, interrupt)?;
        Ok(Admitted {
            sequence,
            search: generate::Search::new(job.params, self.files.model.text_config.vocab_size),
            interrupt: interrupt.clone(),
            slowdown: job.decode_slowdown,
            max_new_tokens: job.params.max_new_tokens,
            stats: DecodeStats::default(),
        })
    }

    /// Embeds the prompt, concatenates it after the image features and runs
    /// the text encoder; adds the time it queued for the graphs to `waited`.
    fn encode(
        &self,
        features: &Features,
        prompt: &[u32],
        (run_options, interrupt): (&RunOptions, &Interrupt),
        waited: &mut Duration,
    ) -> Result<(DynValue, usize), EngineError> {
        let ids: Vec<i64> = prompt.iter().map(|&i| i as i64).collect();
        let mut embed = self.sessions.embed.take(interrupt)?;
        *waited += embed.waited;
        let embeds = run_embed(&mut embed, &ids, 1)?;
        drop(embed);
        let d = features.dim;
        let total = features.tokens + prompt.len();
        let mut joined = Vec::with_capacity(total * d);
        joined.extend_from_slice(&features.data);
        joined.extend_from_slice(&embeds);
        let input = float_tensor("encoder", vec![1, total, d], joined, self.float16)?;
        let mask =
            Tensor::from_array(([1usize, total], vec![1i64; total])).map_err(ort_err("encoder"))?;
        let mut encoder = self.sessions.encoder.take(interrupt)?;
        *waited += encoder.waited;
        let mut out = encoder
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

    /// The job's image features (reused, or encoded now) and its prompt
    /// through the text encoder: the encoder states [1, E, D] and E.
    fn encode_job(
        &self,
        job: &Job<'_>,
        (run_options, interrupt): (&RunOptions, &Interrupt),
        timings: &mut Timings,
        waited: &mut Duration,
    ) -> Result<(DynValue, usize), EngineError> {
        let t0 = Instant::now();
        let image = job.image;
        let key = image_key(image);
        let hashed = t0.elapsed();
        interrupt.check()?;
        let t = Instant::now();
        let (reused, encoding) = self.reuse_features(job, key, interrupt)?;
        let features = match reused {
            Some(features) => {
                // Waiting for another user's encode of this image counts as queueing.
                timings.vision_cached = true;
                timings.preprocess_ms = ms(hashed);
                timings.vision_ms = ms(t.elapsed());
                *waited += t.elapsed();
                features
            }
            None => {
                // Preprocess before queueing for the graph (another run may hold it).
                let (pixels, shape) = preprocess::pixel_values(image, &self.files.preprocessor);
                timings.preprocess_ms = ms(hashed + t.elapsed());
                let t = Instant::now();
                let mut vision = self.sessions.vision.take(interrupt)?;
                *waited += vision.waited;
                let features = Arc::new(
                    run_vision(&mut vision, pixels, shape, self.float16, run_options)
                        .map_err(|e| interrupt.explain(e))?,
                );
                drop(vision);
                timings.vision_ms = ms(t.elapsed());
                if let Some(encoding) = encoding {
                    encoding.finish(features.clone());
                }
                features
            }
        };

        interrupt.check()?;
        let t = Instant::now();
        let encoded = self.encode(&features, job.prompt, (run_options, interrupt), waited);
        job.vision.put(key, features);
        let (hidden, enc_len) = encoded.map_err(|e| interrupt.explain(e))?;
        timings.encoder_ms = ms(t.elapsed());
        Ok((hidden, enc_len))
    }

    /// A request on its way to the model's decode batch, which holds for it
    /// until the guard drops; `None` without the batchable decoder.
    fn arriving_guard(&self) -> Option<Arriving<'_>> {
        matches!(self.sessions.decoder, DecoderGraphs::Batched(_))
            .then(|| self.scheduler.arriving())
    }

    /// What a cancel of a request must wake: the queues for the graphs, the
    /// wait for another user's encode of its image, and the decode batch.
    fn wakers(&self, shared_vision: &Arc<SharedVision>) -> Vec<Arc<dyn Wake>> {
        let mut wakers: Vec<Arc<dyn Wake>> = self.sessions.queues();
        wakers.push(shared_vision.clone());
        wakers.push(self.scheduler.clone());
        wakers
    }

    /// Features of the job's image that this user or another user of the
    /// model already has (waiting while another encodes it); otherwise
    /// `None` and, when features are shared, this user's promise to encode it.
    fn reuse_features<'j>(
        &self,
        job: &Job<'j>,
        key: u128,
        interrupt: &Interrupt,
    ) -> Result<(Option<Arc<Features>>, Option<Encoding<'j>>), EngineError> {
        if !job.vision.enabled() {
            return Ok((None, None));
        }
        if let Some(features) = job.vision.get(key) {
            return Ok((Some(features), None));
        }
        Ok(match job.shared_vision.claim(key, interrupt)? {
            Claim::Ready(features) => (Some(features), None),
            Claim::Encode(encoding) => (None, Some(encoding)),
        })
    }
}

impl Backend for OnnxBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Onnx
    }

    fn serves(&self, _task: Task) -> bool {
        true
    }

    fn generate(&self, job: Job<'_>, interrupt: &Interrupt) -> Result<Generated, EngineError> {
        let (run_options, _timer) = run_options(interrupt, self.wakers(job.shared_vision))?;
        let mut timings = Timings::default();
        let mut waited = Duration::ZERO;
        // On its way to the batch, which may wait for it (the scheduler's hold).
        let arriving = self.arriving_guard();
        let (hidden, enc_len) =
            self.encode_job(&job, (&run_options, interrupt), &mut timings, &mut waited)?;

        let t = Instant::now();
        let (decoded, first, later_runs) = match &self.sessions.decoder {
            DecoderGraphs::Batched(graphs) => {
                let shape = Shape::of(&self.files);
                let (sequence, cross_waited) =
                    Sequence::new(graphs, &hidden, shape, self.float16, interrupt)?;
                // The cross keys and values belong to the first token, as in
                // the merged decoder's first step.
                let cross = t.elapsed();
                waited += cross_waited;
                drop(arriving);
                let request = Admitted {
                    sequence,
                    search: generate::Search::new(job.params, shape.vocab()),
                    interrupt: interrupt.clone(),
                    slowdown: job.decode_slowdown,
                    max_new_tokens: job.params.max_new_tokens,
                    stats: DecodeStats::default(),
                };
                let left = self.scheduler.decode(request, || {
                    Batch::new(Stepper::new(
                        &self.sessions.embed,
                        graphs,
                        shape,
                        self.float16,
                    ))
                });
                let stats = left.stats;
                let decoded = left.result?;
                waited += stats.waited;
                timings.decode_batch = stats.widest;
                let first = stats
                    .first_step_done
                    .map_or(cross, |done| done.saturating_duration_since(t));
                let later_runs = stats.runtime.saturating_sub(stats.first_step_runtime);
                (decoded, first, later_runs)
            }
            DecoderGraphs::Merged(decoder) => {
                let mut step = OnnxDecoder::new(
                    &self.sessions.embed,
                    decoder,
                    hidden,
                    enc_len,
                    &self.files,
                    self.float16,
                    interrupt,
                )?;
                let decoded = generate::decode(&mut step, job.params)?;
                waited += step.waited;
                timings.decode_batch = 1;
                let later_runs = step.runtime.saturating_sub(step.first_step_runtime);
                (decoded, step.first_step.unwrap_or_default(), later_runs)
            }
        };
        let decode_time = t.elapsed();
        timings.decode_ms = ms(decode_time);
        timings.first_token_ms = ms(first);
        let steps = decoded.ids.len().saturating_sub(1);
        if steps > 1 {
            timings.per_token_ms = ms((decode_time.saturating_sub(first)) / (steps as u32 - 1));
            timings.per_token_runtime_ms = ms(later_runs / (steps as u32 - 1));
        }
        timings.queue_wait_ms = ms(waited);
        Ok(Generated { decoded, timings })
    }

    fn graph_sources(&self) -> &[(Graph, GraphSource)] {
        &self.sources
    }

    fn decoding(&self) -> usize {
        self.scheduler.decoding()
    }

    fn decode_steps(&self) -> Vec<u64> {
        self.scheduler.steps()
    }

    fn arriving(&self) -> Option<Box<dyn Send + '_>> {
        self.arriving_guard()
            .map(|guard| Box::new(guard) as Box<dyn Send + '_>)
    }
}

/// The four ONNX graphs of an onnx-community directory, opened.
struct Opened {
    sessions: Sessions,
    /// The graphs take float16 activations.
    float16: bool,
    sources: Vec<(Graph, GraphSource)>,
}

/// Opens the four ONNX graphs of an onnx-community directory, side by side
/// ([`loading`]).
fn open_sessions(
    dir: &Path,
    files: &ModelFiles,
    options: &SessionOptions,
) -> Result<Opened, ModelError> {
    let runtime = super::runtime::runtime(options.ort_library.as_deref())?;
    // The decoder first: loading a graph briefly needs more memory than it
    // keeps (most for the decoder), and it is the longest to load, so
    // the others load beside it.
    let batched = session::has_batched_decoder(dir, &options.variant);
    let decoder: &[Graph] = if batched {
        &[Graph::DecoderBatched, Graph::DecoderCrossKeyValues]
    } else {
        &[Graph::DecoderMerged]
    };
    let order: Vec<Graph> = decoder
        .iter()
        .copied()
        .chain([Graph::Encoder, Graph::EmbedTokens, Graph::VisionEncoder])
        .collect();
    let opened = loading::open_graphs(&runtime, files, &order, options, loading::loaders())
        .map_err(|e| weights_elsewhere(e, dir, options))?;
    let mut kinds = Vec::new();
    let mut sources = Vec::new();
    let mut by_graph = std::collections::HashMap::new();
    for o in opened {
        sources.push((o.graph, o.source));
        if !matches!(o.graph, Graph::EmbedTokens | Graph::DecoderCrossKeyValues) {
            kinds.push((
                o.graph,
                float16_inputs(
                    &o.session,
                    session::graph_path(dir, o.graph, &options.variant),
                )?,
            ));
        }
        by_graph.insert(o.graph, o.session);
    }
    let not_opened = || OnnxError::Load {
        path: dir.to_path_buf(),
        reason: "not every graph was opened".into(),
    };
    let mut take = |graph: Graph| {
        by_graph
            .remove(&graph)
            .map(Turns::new)
            .ok_or_else(not_opened)
    };
    let decoder = if batched {
        DecoderGraphs::Batched(BatchedGraphs {
            step: take(Graph::DecoderBatched)?,
            cross: take(Graph::DecoderCrossKeyValues)?,
        })
    } else {
        DecoderGraphs::Merged(take(Graph::DecoderMerged)?)
    };
    let sessions = Sessions {
        vision: take(Graph::VisionEncoder)?,
        embed: take(Graph::EmbedTokens)?,
        encoder: take(Graph::Encoder)?,
        decoder,
    };
    // Reported in the usual order: vision encoder, embedding, encoder, decoder.
    let rank = |g: &Graph| {
        Graph::ONNX_COMMUNITY
            .iter()
            .chain(&Graph::BATCHED)
            .position(|x| x == g)
    };
    kinds.sort_by_key(|k| rank(&k.0));
    sources.sort_by_key(|k| rank(&k.0));
    let float16 = kinds.first().is_some_and(|k| k.1);
    if let Some((g, _)) = kinds.iter().find(|k| k.1 != float16) {
        return Err(ModelError::Onnx(OnnxError::Load {
            path: session::graph_path(dir, *g, &options.variant),
            reason: "its float inputs differ in precision from the vision encoder's".into(),
        }));
    }
    Ok(Opened {
        sessions,
        float16,
        sources,
    })
}

/// A graph whose weights are another graph's file (the batchable decoder's
/// read the merged decoder's) says so when it does not load: a damaged merged
/// decoder fails them.
fn weights_elsewhere(e: OnnxError, dir: &Path, options: &SessionOptions) -> OnnxError {
    let OnnxError::Load { path, reason } = e else {
        return e;
    };
    let weights = Graph::BATCHED
        .iter()
        .find(|&&g| session::graph_path(dir, g, &options.variant) == path)
        .and_then(|g| g.weights_from());
    let reason = match weights {
        Some(w) => format!(
            "{reason} (its weights are read from {})",
            session::graph_path(dir, w, &options.variant).display()
        ),
        None => reason,
    };
    OnnxError::Load { path, reason }
}
