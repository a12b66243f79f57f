//! The ONNX Runtime backend.
//!
//! - [`backend`]: the four onnx-community graphs as the engine's
//!   [`crate::engine::backend::Backend`];
//! - [`decoder`]: the merged decoder as a step model for the generation loops;
//! - [`batched`]: the batchable decoder (this project's exporter's): steps of
//!   several requests in one run, and a request alone through the same graph;
//! - [`scheduler`]: the decode steps of a model's requests in flight run as
//!   one batch (a request's thread leads, the others wait for their answers),
//!   joined within each request's bound on its slowdown ([`join_bound`]);
//! - [`tensors`]: values and runs shared with the Hailo split's ONNX parts;
//! - [`describe`]: every graph of a directory, validated, for `florenced signature`;
//! - [`loading`]: a model's graphs opened side by side;
//! - [`session`]: one graph opened as a validated session, with its
//!   [`session::SessionOptions`] and threads;
//! - [`graph_cache`]: optimised graphs saved once and mapped at later loads;
//! - [`runtime`]: finding and loading the ONNX Runtime library, with
//!   [`shared_arena`] (one allocator for every session) and
//!   [`execution_provider`] (the CPU or another provider the library offers);
//! - [`signature`]: the graphs' expected inputs and outputs;
//! - [`error`]: why a graph cannot be opened.

pub mod backend;
pub mod batched;
pub mod decoder;
pub mod describe;
pub mod error;
pub mod execution_provider;
pub mod graph_cache;
pub mod join_bound;
pub(crate) mod loading;
pub mod runtime;
pub(crate) mod scheduler;
pub mod session;
pub mod shared_arena;
pub mod signature;
pub mod tensors;

pub use backend::OnnxBackend;
pub use error::OnnxError;
