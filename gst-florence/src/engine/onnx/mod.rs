//! The ONNX Runtime backend.
//!
//! - [`backend`]: the four onnx-community graphs as the engine's
//!   [`crate::engine::backend::Backend`];
//! - [`decoder`]: the merged decoder as a step model for the generation loops;
//! - [`tensors`]: values and runs shared with the Hailo split's ONNX parts;
//! - [`describe`]: every graph of a directory, validated, for `florenced signature`.
//!
//! Session opening, the optimised-graph cache and the runtime library are
//! [`crate::engine::model_dir`], [`crate::engine::graph_cache`] and
//! [`crate::engine::runtime`].

pub mod backend;
pub mod decoder;
pub mod describe;
pub mod tensors;

pub use backend::OnnxBackend;
