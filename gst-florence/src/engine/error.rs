//! The engine's error: what went wrong in a request, whichever backend ran it.

use std::path::PathBuf;

use super::failure::BackendFailure;
use super::model_error::ModelError;
use super::preprocess::ImageError;
use super::task::PromptError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Prompt(#[from] PromptError),
    #[error(transparent)]
    Image(#[from] ImageError),
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
    /// The run was stopped by its [`super::interrupt::Interrupt`] before it finished.
    #[error("{0}")]
    Interrupted(Interruption),
    /// The backend's device failed (busy, lost, timed out, ...).
    #[error(transparent)]
    Backend(#[from] BackendFailure),
    /// The model directory cannot run this task (hailo-florence's layout runs
    /// only `<CAPTION>`, on the device).
    #[error("{task} cannot run on {dir}: {reason}")]
    TaskUnavailable {
        task: &'static str,
        dir: PathBuf,
        reason: &'static str,
    },
}

/// Why a run stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Interruption {
    #[error("the request's deadline passed before inference finished")]
    DeadlineExceeded,
    #[error("the request was cancelled")]
    Cancelled,
}

/// A model output that was not produced.
pub(crate) fn missing(stage: &'static str, name: &str) -> EngineError {
    EngineError::Output {
        stage,
        name: name.to_owned(),
        message: "not produced".into(),
    }
}
