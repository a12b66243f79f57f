//! What a caller asks of the engine: a task, its input and generation options.

use super::config::EarlyStopping;
use super::task::{Task, TaskInput};

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
