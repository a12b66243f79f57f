//! Why a model directory cannot be loaded: the errors of the files every
//! backend reads (configuration, tokenizer, the Hailo layout's tables), of the
//! options a load accepts, and of the backends, each backend's own kind
//! carried whole so callers can still tell them apart.

use std::path::PathBuf;

use super::config::ConfigError;
use super::onnx::OnnxError;
use super::onnx::runtime::RuntimeError;

/// Quantized or half-precision variants of the onnx-community export, by file suffix,
/// and this project's `_qdq` and `_int8mm` (tools/export: an int8 vision encoder,
/// statically quantised or with its matrix products quantised at run time, with
/// dynamically quantised text graphs).
pub const VARIANTS: [&str; 10] = [
    "",
    "_fp16",
    "_int8",
    "_uint8",
    "_quantized",
    "_q4",
    "_q4f16",
    "_bnb4",
    "_qdq",
    "_int8mm",
];

/// The input resolutions the engine runs: 768 (Florence-2's) and 384 (the Hailo
/// design's: 145 image tokens instead of 577, a quarter of the vision work).
pub const IMAGE_SIZES: [u32; 2] = [384, 768];

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model directory {0} does not exist or is not a directory")]
    NoDirectory(PathBuf),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("unknown model variant {0:?}; expected one of {list}", list = VARIANTS.iter().map(|v| if v.is_empty() { "\"\" (fp32)".to_owned() } else { format!("{v:?}") }).collect::<Vec<_>>().join(", "))]
    UnknownVariant(String),
    /// A model file other than a graph that cannot be used (the Hailo
    /// layout's `.npy` tables, its HEFs).
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("{path}: missing tokenizer ({reason})")]
    MissingTokenizer { path: PathBuf, reason: String },
    #[error("{path}: cannot be read as a tokenizer: {reason}")]
    Tokenizer { path: PathBuf, reason: String },
    /// ONNX Runtime's part: its library, a graph, an execution provider.
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    /// The backend chosen cannot run this model here (no device, wrong layout, ...).
    #[error("{context}: {cause}")]
    Backend { context: String, cause: String },
    #[error(
        "image size {size} is not supported: use 384 or 768 (this model's own, from preprocessor_config.json, is {native})"
    )]
    ImageSize { size: u32, native: u32 },
}

/// Finding or loading the ONNX Runtime library is ONNX Runtime's part.
impl From<RuntimeError> for ModelError {
    fn from(e: RuntimeError) -> Self {
        ModelError::Onnx(e.into())
    }
}
