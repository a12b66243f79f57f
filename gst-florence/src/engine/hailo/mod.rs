//! The Hailo backend: Florence-2's text encoder and decoder on a Hailo NPU
//! (the split of Hailo's dynamic_captioning), through the project's C bridge
//! (`gst-florence/hailo/florence_hailo_bridge.h`) to HailoRT's C++
//! InferModel API.
//!
//! - [`status`]: HailoRT's status numbers and the typed errors they map to;
//! - [`ffi`]: the bridge's C declarations, linked in (feature `hailo`) or
//!   loaded from a shared library (the CI stand-in);
//! - [`bridge`]: safe device and model handles, buffer checks;
//! - [`split_networks`]: the split's two static networks behind one trait,
//!   and their ONNX stand-ins; [`networks`]: the same as HEFs on the device;
//! - [`split`]: the split's vision encoder, embeddings and caption loop;
//! - [`backend`]: the split as the engine's [`crate::engine::backend::Backend`],
//!   with the device's state and its idle release.

pub mod backend;
pub mod bridge;
pub mod ffi;
pub mod networks;
pub mod split;
pub mod split_networks;
pub mod status;

pub use backend::{DEFAULT_IDLE_RELEASE_S, HailoBackend};
pub use bridge::{Bridge, BridgeSource, Device, Model, StreamInfo};
pub use networks::{HailoNetworks, HailoSettings, SplitShapes};
pub use status::{Call, HailoError, Status};
