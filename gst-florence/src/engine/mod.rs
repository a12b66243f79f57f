//! Florence-2 inference, free of GStreamer types so that the element, the
//! daemon and the tests all call the same code.
//!
//! The core, which names no backend: [`model`] (a loaded model directory,
//! shared by its users), [`registry`] (one loaded model per process and key),
//! [`florence`] (one user's handle: prompts, decoding parameters, its
//! vision-feature cache, post-processing),
//! [`request`], [`output`], [`error`] / [`failure`], [`interrupt`], [`task`]
//! (the task table), [`generate`] (greedy, beams, sampling), [`config`],
//! [`preprocess`], [`postprocess`], [`vision_cache`].
//!
//! The seam: [`backend`] (the trait a backend implements) and
//! [`backend_choice`] (the backends' names); [`load`] decides which backends
//! a model loads on. The backends: [`onnx`] (ONNX Runtime, with
//! [`model_dir`], [`graph_cache`], [`runtime`], [`execution_provider`], [`shared_arena`],
//! [`signature`]) and [`hailo`] (the Hailo split). A new backend is a folder
//! beside them implementing [`backend::Backend`], a name in
//! [`backend_choice`] and a branch in [`load`].

pub mod backend;
pub mod backend_choice;
pub mod config;
pub mod error;
pub mod execution_provider;
pub mod failure;
pub mod florence;
pub mod generate;
pub mod graph_cache;
pub mod hailo;
pub mod image_io;
pub mod interrupt;
pub mod layout;
pub mod load;
pub mod model;
pub mod model_dir;
pub mod model_files;
pub mod npy;
pub mod onnx;
pub mod output;
pub mod postprocess;
pub mod preprocess;
pub mod region;
pub mod registry;
pub mod request;
pub mod runtime;
pub mod shared_arena;
pub mod signature;
pub mod task;
pub mod vision_cache;

pub use backend::DeviceState;
pub use backend_choice::{BackendChoice, BackendKind};
pub use config::{ConfigError, GenerationConfig, ModelConfig, ModelFiles, PreprocessorConfig};
pub use error::{EngineError, Interruption};
pub use execution_provider::ExecutionProvider;
pub use failure::{BackendFailure, FailureKind};
pub use florence::Florence;
pub use interrupt::Interrupt;
pub use load::LoadOptions;
pub use model_dir::{ModelError, SessionOptions};
pub use output::{Output, Timings};
pub use registry::{Acquired, LoadedModel};
pub use request::{GenerationOptions, Request};
pub use runtime::{Runtime, RuntimeError};
