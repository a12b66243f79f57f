//! Florence-2 inference, free of GStreamer types so that the element, the
//! daemon and the tests all call the same code.
//!
//! The core, which names no backend: [`model`] (a loaded model directory,
//! shared by its users), [`registry`] (one loaded model per process and key),
//! [`florence`] (one user's handle: prompts, decoding parameters, its
//! vision-feature cache, post-processing),
//! [`request`], [`output`], [`error`] / [`failure`], [`interrupt`], [`task`]
//! (the task table), [`turns`] (fair turns on a shared graph), [`generate`] (greedy, beams, sampling), [`config`],
//! [`preprocess`], [`postprocess`], [`vision_cache`] (a user's last image),
//! [`shared_vision`] (images every user of a model shares).
//!
//! The seam: [`backend`] (the trait a backend implements) and
//! [`backend_choice`] (the backends' names); [`load`] decides which backends
//! a model loads on; [`model_error`] says why a load failed. The backends:
//! [`onnx`] (ONNX Runtime: sessions, the graph cache, the runtime library,
//! execution providers) and [`hailo`] (the Hailo split). A new backend is a
//! folder beside them implementing [`backend::Backend`], a name in
//! [`backend_choice`], a branch in [`load`] and, if its failures need telling
//! apart, a variant in [`model_error`].

pub mod backend;
pub mod backend_choice;
pub mod config;
pub mod cpus;
pub mod error;
pub mod failure;
pub mod florence;
pub mod generate;
pub mod hailo;
pub mod image_io;
pub mod interrupt;
pub mod layout;
pub mod load;
pub mod model;
pub mod model_error;
pub mod model_files;
pub mod npy;
pub mod onnx;
pub mod output;
pub mod postprocess;
pub mod preprocess;
pub mod region;
pub mod registry;
pub mod request;
pub mod shared_vision;
pub mod task;
pub mod turns;
pub mod vision_cache;

pub use backend::DeviceState;
pub use backend_choice::{BackendChoice, BackendKind};
pub use config::{ConfigError, GenerationConfig, ModelConfig, ModelFiles, PreprocessorConfig};
pub use error::{EngineError, Interruption};
pub use failure::{BackendFailure, FailureKind};
pub use florence::Florence;
pub use interrupt::Interrupt;
pub use load::LoadOptions;
pub use model_error::ModelError;
pub use onnx::OnnxError;
pub use onnx::execution_provider::ExecutionProvider;
pub use onnx::join_bound::DEFAULT_DECODE_SLOWDOWN;
pub use onnx::runtime::{Runtime, RuntimeError};
pub use onnx::session::SessionOptions;
pub use output::{Output, Timings};
pub use registry::{Acquired, LoadedModel};
pub use request::{GenerationOptions, Request};
