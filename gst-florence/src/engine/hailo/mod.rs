//! Florence-2's text encoder and decoder on a Hailo NPU, through the
//! project's C bridge (`gst-florence/hailo/florence_hailo_bridge.h`) to
//! HailoRT's C++ InferModel API.
//!
//! - [`status`]: HailoRT's status numbers and the typed errors they map to;
//! - [`ffi`]: the bridge's C declarations, linked in (feature `hailo`) or
//!   loaded from a shared library (the CI stand-in);
//! - [`bridge`]: safe device and model handles, buffer checks;
//! - [`networks`]: the split's two HEFs behind the split's network trait.

pub mod bridge;
pub mod ffi;
pub mod networks;
pub mod status;

pub use bridge::{Bridge, BridgeSource, Device, Model, StreamInfo};
pub use networks::{HailoNetworks, HailoSettings, SplitShapes};
pub use status::{Call, HailoError, Status};
