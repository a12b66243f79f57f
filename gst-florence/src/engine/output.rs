//! What the engine answers a request with.

use std::time::Duration;

use serde::Serialize;

use super::backend_choice::BackendKind;
use super::postprocess::TaskResult;

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
    /// Of `per_token_ms`, the time inside the runtime (token embedding and
    /// decoder runs); the rest is the engine's own work per token (logits
    /// processing, beam bookkeeping, building the inputs).
    pub per_token_runtime_ms: f64,
    pub decode_ms: f64,
    pub postprocess_ms: f64,
    pub total_ms: f64,
    /// Of the above, the time this request queued for its turn on a graph
    /// behind other users of a shared model (0 when alone).
    pub queue_wait_ms: f64,
    /// The most requests whose decoder steps ran together in one run with
    /// this one's (1: it decoded alone; 0: a backend without a decoder of
    /// its own steps, the Hailo split).
    pub decode_batch: usize,
}

/// Milliseconds rounded to 1/100.
pub fn ms(d: Duration) -> f64 {
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
    /// The backend that ran this request.
    pub backend: BackendKind,
    pub timings: Timings,
}
