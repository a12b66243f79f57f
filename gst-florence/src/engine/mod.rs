//! Florence-2 inference on ONNX Runtime, free of GStreamer types so that the
//! element, the daemon and the tests all call the same code.

pub mod config;
pub mod generate;
pub mod graph_cache;
pub mod hailo;
pub mod hailo_caption;
pub mod hailo_split;
pub mod image_io;
pub mod layout;
pub mod model_dir;
pub mod pipeline;
pub mod postprocess;
pub mod preprocess;
pub mod runtime;
pub mod shared_arena;
pub mod signature;
pub mod task;

pub use config::{ConfigError, GenerationConfig, ModelConfig, ModelFiles, PreprocessorConfig};
pub use model_dir::{ModelError, SessionOptions};
pub use runtime::{Runtime, RuntimeError};
