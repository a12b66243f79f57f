//! The protocol between an application (florenced among them) and the
//! `florencecaption` element: the one place that names every field of the
//! request an application attaches to a buffer and of the result the element
//! answers with, gives each its Rust type, and encodes it to and from a
//! `gst::Structure` (the custom metas' and the bus message's contents).
//!
//! - [`names`]: the metas', message's and structures' names;
//! - [`request_fields`]: [`RequestField`] and the typed request
//!   ([`BufferRequest`], [`RequestParams`]); its decoding is the element's
//!   validation of a per-buffer request;
//! - [`result_fields`]: [`ResultField`] and the typed result
//!   ([`CaptionResult`], [`Failure`], [`ElementAnswer`]);
//! - [`region_fields`]: [`RegionField`] and [`RegionParams`], the
//!   parameters of the region metas (one per box, quad or polygon group);
//! - [`task_result`]: the `result` field (the post-processed result as JSON,
//!   what C applications read);
//! - [`error_kind`]: [`ErrorKind`], the one error type a request's failure
//!   travels as, made from an [`EngineError`](crate::engine::EngineError) in one function;
//! - [`model_message`]: the `florence-model` message ([`ModelInUse`]): which
//!   loaded model an instance uses and how many share it;
//! - [`values`]: reading GLib values leniently (any integer type for a count).
//!
//! The C header `include/gst/florence/florence.h` lists the same names for C
//! applications; a test (`c_header_tests.rs`) checks that both lists agree.

pub mod error_kind;
pub mod model_message;
pub mod names;
pub mod region_fields;
pub mod request_fields;
pub mod result_fields;
pub mod task_result;
pub mod values;

#[cfg(test)]
mod c_header_tests;

pub use error_kind::ErrorKind;
pub use model_message::{MODEL_MESSAGE_NAME, ModelField, ModelInUse};
pub use names::{ASKED_NAME, MESSAGE_NAME, META_NAME, REQUEST_META_NAME, RESULTS_NAME};
pub use region_fields::{REGION_PARAMS_NAME, RegionField, RegionParams};
pub use request_fields::{BufferRequest, InvalidRequest, RequestField, RequestParams};
pub use result_fields::{CaptionResult, DecodeError, ElementAnswer, Failure, ResultField};
