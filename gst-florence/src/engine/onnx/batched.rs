//! The batchable decoder (`decoder_model_batched.onnx` and
//! `decoder_cross_key_values.onnx`, written by this project's exporter): one
//! run advances the hypotheses of several requests by one token each,
//! whatever their past lengths and prompts.
//!
//! Each row of a run brings its own position (its past length), its past
//! decoder keys and values padded to the run's window W with
//! `self_attention_mask` 0 on the padding, and its request's cross-attention
//! keys and values padded to the run's E with `encoder_attention_mask` 0 on
//! the padding (W and E: one slot more than the run's longest row needs,
//! see [`padded`]). The graph puts the step's own key first and the padding
//! last, so a row's numbers do not depend on W, E or its neighbours: the
//! exporter checks that bit for bit, and the engine's tests check that a request's ids
//! are the same alone and in any batch. A request alone runs through the
//! same graph (a batch of its own hypotheses), so "alone" and "batched" are
//! one code path.
//!
//! The caches are the engine's, not ONNX Runtime's: a hypothesis keeps its
//! past keys and values slot by slot; the run's padded tensors are built
//! from them when the batch's rows change (a request joins or leaves, beams
//! are reordered) and otherwise kept from step to step, each step writing
//! its rows' new slot in place ([`PastBatch`]); the cross keys and values
//! of a batch are built once and kept while the batch's members stay the
//! same.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ort::session::Session;
use ort::value::{DynValue, Tensor};

use super::join_bound::Load;
use super::signature::cache_names;
use super::tensors::{float_tensor, float_values, float_values_into, ort_err, run_embed};
use crate::engine::config::ModelFiles;
use crate::engine::error::{EngineError, missing};
use crate::engine::generate::{Decoded, Search};
use crate::engine::interrupt::Interrupt;
use crate::engine::turns::Turns;

/// The window and encoder length of a run whose longest row needs `n`: one
/// masked slot more. A row's numbers are then the same at every padding
/// (the exporter checks it bit for bit, and measured it over 129 encoder
/// lengths on the tiny and base-shaped models), while a run without any
/// padding gives different last bits for some lengths (ONNX Runtime's
/// kernels take another path for a row without a masked tail): so the
/// longest row of a batch, and a request alone, are padded too. The
/// encoder states are not rounded up further (on the CPU a larger padding
/// is only more work); a kept past's window is ([`kept_window`]).
fn padded(n: usize) -> usize {
    n + 1
}

/// The window a kept past is built with when its rows need `n` slots:
/// rounded up, so that it serves the next steps too (a row's numbers are
/// the same at every padding, above; the masked slots' attention is little
/// work beside the decoder's weights, and windows of 16 measured as fast as
/// one slot).
fn kept_window(n: usize) -> usize {
    n.next_multiple_of(16)
}

/// The two graphs, each taken in turn for one run at a time.
pub struct BatchedGraphs {
    pub(crate) cross: Turns<Session>,
    pub(crate) step: Turns<Session>,
}

/// The decoder's sizes, from the model's configuration.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    layers: usize,
    heads: usize,
    head_dim: usize,
    d_model: usize,
    vocab: usize,
}

impl Shape {
    pub(crate) fn of(files: &ModelFiles) -> Self {
        let t = &files.model.text_config;
        Shape {
            layers: t.decoder_layers,
            heads: t.decoder_attention_heads,
            head_dim: files.model.decoder_head_dim(),
            d_model: t.d_model,
            vocab: t.vocab_size,
        }
    }

    pub(crate) fn vocab(&self) -> usize {
        self.vocab
    }

    /// Floats of one slot of one layer's key (or value): every head's vector.
    fn slot(&self) -> usize {
        self.heads * self.head_dim
    }
}

/// One hypothesis' past decoder keys and values: per layer key then value,
/// each `len` slots of [heads, head_dim], slot after slot.
#[derive(Clone)]
struct Past {
    kv: Vec<Vec<f32>>,
    len: usize,
}

static NEXT_SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// One request decoding through the batched graph: its cross keys and values
/// and its hypotheses' pasts.
pub struct Sequence {
    id: u64,
    /// Per layer key then value, each [heads, enc_len, head_dim].
    cross: Vec<Vec<f32>>,
    enc_len: usize,
    hyps: Vec<Past>,
    /// Bumped whenever `hyps` are new or reordered: a kept [`PastBatch`]
    /// holds them in the order of its generation.
    generation: u64,
    /// The current step's parents were applied to `hyps` (a step that failed
    /// after that is tried again, alone, without applying them twice).
    followed: bool,
}

impl Sequence {
    /// Runs the cross-key/value graph on the request's encoder states [1, E, D].
    pub(crate) fn new(
        graphs: &BatchedGraphs,
        hidden: &DynValue,
        shape: Shape,
        float16: bool,
        interrupt: &Interrupt,
    ) -> Result<(Self, Duration), EngineError> {
        let (dims, data) = float_values("decoder", hidden)?;
        let enc_len = dims.get(1).copied().unwrap_or(0) as usize;
        let states = float_tensor("decoder", vec![1, enc_len, shape.d_model], data, float16)?;
        let mut session = graphs.cross.take(interrupt)?;
        let waited = session.waited;
        let mut out = session
            .run(ort::inputs! {"encoder_hidden_states" => states})
            .map_err(ort_err("decoder"))?;
        let mut cross = Vec::with_capacity(2 * shape.layers);
        for layer in 0..shape.layers {
            for name in &cache_names("present", layer)[2..] {
                let v = out.remove(name).ok_or_else(|| missing("decoder", name))?;
                let (dims, data) = float_values("decoder", &v)?;
                if data.len() != shape.slot() * enc_len {
                    return Err(EngineError::Output {
                        stage: "decoder",
                        name: name.clone(),
                        message: format!(
                            "shape {dims:?}, expected [1, {}, {enc_len}, {}]",
                            shape.heads, shape.head_dim
                        ),
                    });
                }
                cross.push(data);
            }
        }
        Ok((
            Sequence {
                id: NEXT_SEQUENCE.fetch_add(1, Ordering::Relaxed),
                cross,
                enc_len,
                hyps: Vec::new(),
                generation: 0,
                followed: false,
            },
            waited,
        ))
    }

    /// The hypotheses of the next step: `rows` fresh ones on the first step,
    /// else those of the last step that `parents` names, in its order.
    fn follow(&mut self, rows: usize, parents: Option<&[usize]>, shape: Shape) {
        if std::mem::replace(&mut self.followed, true) {
            return;
        }
        match parents {
            None => {
                let empty = Past {
                    kv: vec![Vec::new(); 2 * shape.layers],
                    len: 0,
                };
                self.hyps = vec![empty; rows];
                self.generation += 1;
            }
            Some(p) if p.iter().enumerate().all(|(i, &j)| i == j) && p.len() == self.hyps.len() => {
            }
            Some(p) => {
                self.hyps = p.iter().map(|&j| self.hyps[j].clone()).collect();
                self.generation += 1;
            }
        }
    }
}

/// One request's part of a batched step: its state, the last token of each
/// of its hypotheses and their parents (as [`StepModel::step`] takes them).
pub(crate) struct Part<'a> {
    pub(crate) sequence: &'a mut Sequence,
    pub(crate) tokens: &'a [u32],
    pub(crate) parents: Option<&'a [usize]>,
}

/// Cross keys and values of a batch, kept while its members stay the same.
struct CrossBatch {
    /// (sequence, hypotheses) of each member, in row order, and the padded E.
    members: Vec<(u64, usize)>,
    enc: usize,
    values: Vec<DynValue>,
    mask: DynValue,
}

/// The padded past keys and values of a run's rows, kept for the next step
/// while the rows stay the same and in the same order: a step then writes
/// each row's new slot in place instead of building every tensor anew, slot
/// by slot (an 8-bit step of 2 to 8 requests measured 3-5 % faster).
struct PastBatch {
    /// (sequence, hypotheses, their generation) of each member, in row order.
    members: Vec<(u64, usize, u64)>,
    /// Slots filled in each row.
    lens: Vec<usize>,
    window: usize,
    /// Per layer key then value, each [rows, heads, window, head_dim].
    values: Vec<DynValue>,
}

/// Runs batched steps: builds the padded inputs, runs the graph, hands each
/// row its new key and value.
pub struct Stepper<'a> {
    embed: &'a Turns<Session>,
    graphs: &'a BatchedGraphs,
    shape: Shape,
    float16: bool,
    cross: Option<CrossBatch>,
    past: Option<PastBatch>,
    logits: Vec<f32>,
    past_names: Vec<[String; 4]>,
    new_names: Vec<[String; 4]>,
    /// Time inside ONNX Runtime runs, and queueing for the graphs.
    pub(crate) runtime: Duration,
    pub(crate) waited: Duration,
}

impl<'a> Stepper<'a> {
    pub(crate) fn new(
        embed: &'a Turns<Session>,
        graphs: &'a BatchedGraphs,
        shape: Shape,
        float16: bool,
    ) -> Self {
        Stepper {
            embed,
            graphs,
            shape,
            float16,
            cross: None,
            past: None,
            logits: Vec::new(),
            past_names: (0..shape.layers)
                .map(|i| cache_names("past_key_values", i))
                .collect(),
            new_names: (0..shape.layers)
                .map(|i| cache_names("new_key_values", i))
                .collect(),
            runtime: Duration::ZERO,
            waited: Duration::ZERO,
        }
    }

    pub(crate) fn vocab(&self) -> usize {
        self.shape.vocab
    }

    /// The cross keys and values and encoder mask for these members, built
    /// when the members changed.
    fn cross_for(&mut self, parts: &[Part<'_>]) -> Result<(), EngineError> {
        let members: Vec<(u64, usize)> = parts
            .iter()
            .map(|p| (p.sequence.id, p.tokens.len()))
            .collect();
        let enc = padded(parts.iter().map(|p| p.sequence.enc_len).max().unwrap_or(0));
        if self
            .cross
            .as_ref()
            .is_some_and(|c| c.members == members && c.enc == enc)
        {
            return Ok(());
        }
        let s = self.shape;
        let rows: usize = members.iter().map(|m| m.1).sum();
        let mut mask = vec![0i64; rows * enc];
        let mut values = Vec::with_capacity(2 * s.layers);
        for j in 0..2 * s.layers {
            let mut data = vec![0f32; rows * s.heads * enc * s.head_dim];
            let mut row = 0;
            for p in parts {
                let seq = &*p.sequence;
                let src = &seq.cross[j];
                for _ in 0..p.tokens.len() {
                    for h in 0..s.heads {
                        let from = h * seq.enc_len * s.head_dim;
                        let to = (row * s.heads + h) * enc * s.head_dim;
                        let n = seq.enc_len * s.head_dim;
                        data[to..to + n].copy_from_slice(&src[from..from + n]);
                    }
                    if j == 0 {
                        mask[row * enc..row * enc + seq.enc_len].fill(1);
                    }
                    row += 1;
                }
            }
            values.push(float_tensor(
                "decoder",
                vec![rows, s.heads, enc, s.head_dim],
                data,
                self.float16,
            )?);
        }
        let mask = Tensor::from_array(([rows, enc], mask))
            .map_err(ort_err("decoder"))?
            .into_dyn();
        self.cross = Some(CrossBatch {
            members,
            enc,
            values,
            mask,
        });
        Ok(())
    }

    /// One decoder step for every hypothesis of every part, in one run.
    /// Returns the logits, one row of the vocabulary per hypothesis, parts in
    /// order.
    pub(crate) fn step(
        &mut self,
        parts: &mut [Part<'_>],
        interrupt: &Interrupt,
    ) -> Result<&[f32], EngineError> {
        let s = self.shape;
        for p in parts.iter_mut() {
            p.sequence.follow(p.tokens.len(), p.parents, s);
        }
        self.cross_for(parts)?;
        let rows: usize = parts.iter().map(|p| p.tokens.len()).sum();
        let hyps = || parts.iter().flat_map(|p| p.sequence.hyps.iter());
        let window = padded(hyps().map(|h| h.len).max().unwrap_or(0));

        let ids: Vec<i64> = parts
            .iter()
            .flat_map(|p| p.tokens.iter().map(|&t| t as i64))
            .collect();
        let mut embed = self.embed.take(interrupt)?;
        self.waited += embed.waited;
        let run_start = Instant::now();
        let embeds = run_embed(&mut embed, &ids, rows)?;
        let mut in_runtime = run_start.elapsed();
        drop(embed);
        let embeds = float_tensor("decoder", vec![rows, 1, s.d_model], embeds, self.float16)?;
        let positions: Vec<i64> = hyps().map(|h| h.len as i64).collect();
        let positions = Tensor::from_array(([rows, 1usize], positions))
            .map_err(ort_err("decoder"))?
            .into_dyn();
        self.past_for(parts, window)?;
        let Some(past) = self.past.as_ref() else {
            return Err(missing("decoder", "past keys and values"));
        };
        let window = past.window;
        let mut self_mask = vec![0i64; rows * window];
        for (r, h) in hyps().enumerate() {
            self_mask[r * window..r * window + h.len].fill(1);
        }
        let self_mask = Tensor::from_array(([rows, window], self_mask))
            .map_err(ort_err("decoder"))?
            .into_dyn();
        let Some(cross) = self.cross.as_ref() else {
            return Err(missing("decoder", "cross keys and values"));
        };
        let mut inputs: Vec<(
            std::borrow::Cow<'_, str>,
            ort::session::SessionInputValue<'_>,
        )> = vec![
            ("inputs_embeds".into(), (&embeds).into()),
            ("position_ids".into(), (&positions).into()),
            ("self_attention_mask".into(), (&self_mask).into()),
            ("encoder_attention_mask".into(), (&cross.mask).into()),
        ];
        for (layer, names) in self.past_names.iter().enumerate() {
            for (j, name) in names.iter().enumerate() {
                let v = if j < 2 {
                    &past.values[2 * layer + j]
                } else {
                    &cross.values[2 * layer + j - 2]
                };
                inputs.push((name.as_str().into(), v.into()));
            }
        }
        let mut step = self.graphs.step.take(interrupt)?;
        self.waited += step.waited;
        let run_start = Instant::now();
        let mut out = step.run(inputs).map_err(ort_err("decoder"))?;
        in_runtime += run_start.elapsed();
        self.runtime += in_runtime;
        let logits = out
            .remove("logits")
            .ok_or_else(|| missing("decoder", "logits"))?;
        let mut fresh = Vec::with_capacity(2 * s.layers);
        let mut data = Vec::new();
        for names in &self.new_names {
            for name in &names[..2] {
                let v = out.remove(name).ok_or_else(|| missing("decoder", name))?;
                let dims = float_values_into("decoder", &v, &mut data)?;
                if data.len() != rows * s.slot() {
                    return Err(EngineError::Output {
                        stage: "decoder",
                        name: name.clone(),
                        message: format!(
                            "shape {dims:?}, expected [{rows}, {}, 1, {}]",
                            s.heads, s.head_dim
                        ),
                    });
                }
                fresh.push(std::mem::take(&mut data));
            }
        }
        drop(out);
        drop(step);
        // Checked before any row takes its new key and value: a failed step
        // leaves every hypothesis as it was.
        let dims = float_values_into("decoder", &logits, &mut self.logits)?;
        if self.logits.len() != rows * s.vocab {
            return Err(EngineError::Output {
                stage: "decoder",
                name: "logits".into(),
                message: format!("shape {dims:?}, expected [{rows}, 1, {}]", s.vocab),
            });
        }
        let mut r = 0;
        for p in parts.iter_mut() {
            for h in p.sequence.hyps.iter_mut() {
                for (j, new) in fresh.iter().enumerate() {
                    h.kv[j].extend_from_slice(&new[r * s.slot()..(r + 1) * s.slot()]);
                }
                h.len += 1;
                r += 1;
            }
            p.sequence.followed = false;
        }
        self.keep_past(&fresh)?;
        Ok(&self.logits)
    }

    /// The padded past for these rows, `window` slots at least: the kept one
    /// if the rows are the same, in the same order, and fit; else built from
    /// the hypotheses (float16 graphs: every step, at `window`).
    fn past_for(&mut self, parts: &[Part<'_>], window: usize) -> Result<(), EngineError> {
        let members: Vec<(u64, usize, u64)> = parts
            .iter()
            .map(|p| (p.sequence.id, p.tokens.len(), p.sequence.generation))
            .collect();
        let hyps = || parts.iter().flat_map(|p| p.sequence.hyps.iter());
        if self.past.as_ref().is_some_and(|k| {
            k.members == members
                && k.window >= window
                && hyps().map(|h| h.len).eq(k.lens.iter().copied())
        }) {
            return Ok(());
        }
        let s = self.shape;
        let window = if self.float16 {
            window
        } else {
            kept_window(window)
        };
        let rows = hyps().count();
        let mut values = Vec::with_capacity(2 * s.layers);
        for j in 0..2 * s.layers {
            let mut data = vec![0f32; rows * s.heads * window * s.head_dim];
            for (r, h) in hyps().enumerate() {
                let src = &h.kv[j];
                for slot in 0..h.len {
                    for head in 0..s.heads {
                        let from = (slot * s.heads + head) * s.head_dim;
                        let to = ((r * s.heads + head) * window + slot) * s.head_dim;
                        data[to..to + s.head_dim].copy_from_slice(&src[from..from + s.head_dim]);
                    }
                }
            }
            values.push(float_tensor(
                "decoder",
                vec![rows, s.heads, window, s.head_dim],
                data,
                self.float16,
            )?);
        }
        self.past = Some(PastBatch {
            members,
            lens: hyps().map(|h| h.len).collect(),
            window,
            values,
        });
        Ok(())
    }

    /// Writes the step's new keys and values (`fresh`: per layer key then
    /// value, [rows, heads, 1, head_dim]) into the kept past, in each row's
    /// next slot; a float16 past, or one without room for them, is dropped
    /// (built anew at the next step).
    fn keep_past(&mut self, fresh: &[Vec<f32>]) -> Result<(), EngineError> {
        let s = self.shape;
        let Some(past) = self.past.as_mut() else {
            return Ok(());
        };
        if self.float16 || past.lens.iter().any(|&len| len >= past.window) {
            self.past = None;
            return Ok(());
        }
        let window = past.window;
        for (value, new) in past.values.iter_mut().zip(fresh) {
            let (_, data) = value
                .try_extract_tensor_mut::<f32>()
                .map_err(ort_err("decoder"))?;
            for (r, &len) in past.lens.iter().enumerate() {
                for head in 0..s.heads {
                    let from = (r * s.heads + head) * s.head_dim;
                    let to = ((r * s.heads + head) * window + len) * s.head_dim;
                    data[to..to + s.head_dim].copy_from_slice(&new[from..from + s.head_dim]);
                }
            }
        }
        for len in &mut past.lens {
            *len += 1;
        }
        Ok(())
    }
}

/// A request encoded and ready to join a [`Batch`]
/// ([`super::OnnxBackend::admit`]): its cross keys and values, its search,
/// its interrupt, the slowdown it accepts from joining a batch and what its
/// decoding has cost so far.
pub struct Admitted {
    pub(crate) sequence: Sequence,
    pub(crate) search: Search,
    pub(crate) interrupt: Interrupt,
    /// A run of its batch may take at most this many times its run alone
    /// ([`super::join_bound`]).
    pub(crate) slowdown: f64,
    /// Its longest answer, in new tokens.
    pub(crate) max_new_tokens: usize,
    pub(crate) stats: DecodeStats,
}

impl Admitted {
    /// Its part of a run: rows (hypotheses) and bound.
    pub(crate) fn load(&self) -> Load {
        Load {
            rows: self.search.tokens().len(),
            slowdown: self.slowdown,
            max_new_tokens: self.max_new_tokens,
            held: self.stats.held,
        }
    }
}

/// What one request's decoding cost, for its [`crate::engine::Timings`].
#[derive(Debug, Clone, Default)]
pub struct DecodeStats {
    /// When its first step's logits came back.
    pub first_step_done: Option<Instant>,
    /// Time inside ONNX Runtime of the runs it was in, and of its first one.
    pub runtime: Duration,
    pub first_step_runtime: Duration,
    /// Time the runs it was in queued for the graphs, and its batch was
    /// held for requests on their way to it.
    pub waited: Duration,
    /// Of `waited`, the time its batch was held for requests on their way.
    pub held: Duration,
    /// The most requests decoded together in one run with it (1: alone).
    pub widest: usize,
}

/// A request that left a [`Batch`]: its answer (or why it has none) and
/// what its decoding cost.
pub struct Left<K> {
    pub key: K,
    pub result: Result<Decoded, EngineError>,
    pub stats: DecodeStats,
}

/// Requests decoding together (continuous batching): each step advances
/// every member's hypotheses by one token in one run; requests join and
/// leave between steps. A member leaves alone when its search ends, when
/// its interrupt fires (cancel, deadline: checked before every step) or
/// when its step fails; a run that fails for several members is run again
/// for each alone, so one request's failure is never its neighbours'.
pub struct Batch<'a, K> {
    stepper: Stepper<'a>,
    members: Vec<Member<K>>,
    /// Requests in the last run.
    stepped: usize,
    /// Rows of the last step's run and its time inside ONNX Runtime, when
    /// it ran once for all its members.
    last_run: Option<(usize, Duration)>,
}

struct Member<K> {
    key: K,
    request: Admitted,
}

impl<'a, K> Batch<'a, K> {
    pub(crate) fn new(stepper: Stepper<'a>) -> Self {
        Batch {
            stepper,
            members: Vec::new(),
            stepped: 0,
            last_run: None,
        }
    }

    /// Each member's part of a run.
    pub(crate) fn loads(&self) -> Vec<Load> {
        self.members.iter().map(|m| m.request.load()).collect()
    }

    /// Rows of the last step's run and its time inside ONNX Runtime; `None`
    /// when the step ran nothing or had to run its members one by one.
    pub(crate) fn last_run(&self) -> Option<(usize, Duration)> {
        self.last_run
    }

    /// Whether a member's interrupt fired (the next step lets it leave).
    pub(crate) fn interrupted(&self) -> bool {
        self.members
            .iter()
            .any(|m| m.request.interrupt.check().is_err())
    }

    /// Counts `held` as every member's wait (the batch was held that long).
    pub(crate) fn held(&mut self, held: Duration) {
        for m in &mut self.members {
            m.request.stats.held += held;
            m.request.stats.waited += held;
        }
    }

    /// Adds a request, from the next step on.
    pub fn join(&mut self, key: K, request: Admitted) {
        self.members.push(Member { key, request });
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Requests that the last [`Batch::step`] ran together (0 before any).
    pub fn stepped(&self) -> usize {
        self.stepped
    }

    /// The members still decoding, each with its state, to join another
    /// batch later (a scheduler handing the batch to another thread).
    pub fn into_members(self) -> Vec<(K, Admitted)> {
        self.members
            .into_iter()
            .map(|m| (m.key, m.request))
            .collect()
    }

    /// One step for every member, in one run; returns the members that
    /// left: their search ended (with their answers), their interrupt fired
    /// or their step failed (with the error).
    pub fn step(&mut self) -> Vec<Left<K>> {
        let mut left = Vec::new();
        for m in std::mem::take(&mut self.members) {
            match m.request.interrupt.check() {
                Err(e) => left.push(leave(m, Err(e))),
                Ok(()) => self.members.push(m),
            }
        }
        self.stepped = self.members.len();
        self.last_run = None;
        let rows = self.loads().iter().map(|l| l.rows).sum();
        let mut failed: Vec<Option<EngineError>> = (0..self.members.len()).map(|_| None).collect();
        if !self.members.is_empty() {
            match run(&mut self.stepper, &mut self.members) {
                Ok(took) => self.last_run = Some((rows, took)),
                Err(e) => {
                    if let [only] = failed.as_mut_slice() {
                        *only = Some(e);
                    } else {
                        // Which member's run fails: each alone.
                        for (i, slot) in failed.iter_mut().enumerate() {
                            *slot = run(&mut self.stepper, &mut self.members[i..i + 1]).err();
                        }
                    }
                }
            }
        }
        let members = std::mem::take(&mut self.members);
        for (m, e) in members.into_iter().zip(failed) {
            match e {
                Some(e) => {
                    let e = m.request.interrupt.explain(e);
                    left.push(leave(m, Err(e)));
                }
                None if m.request.search.done() => left.push(leave(m, Ok(()))),
                None => self.members.push(m),
            }
        }
        left
    }
}

/// A member's leaving: with its search's answer, or `Err`.
fn leave<K>(m: Member<K>, outcome: Result<(), EngineError>) -> Left<K> {
    let Admitted { search, stats, .. } = m.request;
    Left {
        key: m.key,
        result: outcome.map(|()| search.finish()),
        stats,
    }
}

/// One run for `members`, each advancing its search with its rows of the
/// logits. Turns are queued for with the member's interrupt when it runs
/// alone (a cancel leaves the queue at once, as a request decoding alone
/// did), and without one for several (one member's cancel must not fail
/// the others' run; it leaves before the next step). Returns the run's time
/// inside ONNX Runtime.
fn run<K>(stepper: &mut Stepper<'_>, members: &mut [Member<K>]) -> Result<Duration, EngineError> {
    let vocab = stepper.vocab();
    let uninterrupted = Interrupt::new();
    let interrupt = match members {
        [only] => only.request.interrupt.clone(),
        _ => uninterrupted,
    };
    let (runtime, waited) = (stepper.runtime, stepper.waited);
    let mut parts: Vec<Part<'_>> = members
        .iter_mut()
        .map(|m| Part {
            sequence: &mut m.request.sequence,
            tokens: m.request.search.tokens(),
            parents: m.request.search.parents(),
        })
        .collect();
    stepper.step(&mut parts, &interrupt)?;
    drop(parts);
    let done = Instant::now();
    let (runtime, waited) = (stepper.runtime - runtime, stepper.waited - waited);
    let logits = &stepper.logits;
    let together = members.len();
    let mut row = 0;
    for m in members.iter_mut() {
        let r = &mut m.request;
        let n = r.search.tokens().len();
        let first = r.search.parents().is_none();
        r.search.advance(&logits[row * vocab..(row + n) * vocab]);
        row += n;
        let s = &mut r.stats;
        if first {
            s.first_step_done = Some(done);
            s.first_step_runtime = runtime;
        }
        s.runtime += runtime;
        s.waited += waited;
        s.widest = s.widest.max(together);
    }
    Ok(runtime)
}
