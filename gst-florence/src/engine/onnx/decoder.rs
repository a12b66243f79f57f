//! Florence-2's merged decoder on ONNX Runtime as a [`StepModel`] for the
//! generation loops of [`crate::engine::generate`].

use std::borrow::Cow;
use std::time::{Duration, Instant};

use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, Tensor};

use super::signature::cache_names;
use super::tensors::{
    float_tensor, float_values, float_values_into, gather_rows, ort_err, run_embed,
};
use crate::engine::config::ModelFiles;
use crate::engine::error::{EngineError, missing};
use crate::engine::generate::StepModel;
use crate::engine::interrupt::Interrupt;
use crate::engine::turns::Turns;

/// The merged decoder driven step by step, its cache fed back without copies
/// (reordered along the batch only when beams change parents). The cache is
/// this request's; the graphs are taken in turn for one run at a time, so
/// requests of other users on the same model alternate their steps with this
/// one's.
pub(super) struct OnnxDecoder<'a> {
    embed: &'a Turns<Session>,
    decoder: &'a Turns<Session>,
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
    pub(super) first_step: Option<Duration>,
    /// Time spent inside ONNX Runtime runs, all steps, and in the first step's.
    pub(super) runtime: Duration,
    pub(super) first_step_runtime: Duration,
    /// Time spent queueing for the graphs behind other users' runs.
    pub(super) waited: Duration,
    /// Checked before every step.
    interrupt: &'a Interrupt,
    past_names: Vec<[String; 4]>,
    present_names: Vec<[String; 4]>,
}

impl<'a> OnnxDecoder<'a> {
    pub(super) fn new(
        embed: &'a Turns<Session>,
        decoder: &'a Turns<Session>,
        hidden: DynValue,
        enc_len: usize,
        files: &ModelFiles,
        float16: bool,
        interrupt: &'a Interrupt,
    ) -> Result<Self, EngineError> {
        let t = &files.model.text_config;
        let layers = t.decoder_layers;
        Ok(OnnxDecoder {
            embed,
            decoder,
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
            waited: Duration::ZERO,
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
        let mut embed = self.embed.take(self.interrupt)?;
        self.waited += embed.waited;
        let run_start = Instant::now();
        let embeds = run_embed(&mut embed, &ids, n)?;
        let mut in_runtime = run_start.elapsed();
        drop(embed);
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
        let mut decoder = self.decoder.take(self.interrupt)?;
        self.waited += decoder.waited;
        let run_start = Instant::now();
        let mut out = decoder.run(inputs).map_err(ort_err("decoder"))?;
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
        drop(decoder);
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
