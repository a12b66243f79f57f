//! The Hailo backend: Florence-2's text encoder and decoder on a Hailo NPU
//! (the split of Hailo's dynamic_captioning), through the project's C bridge
//! (`gst-florence/hailo/florence_hailo_bridge.h`) to HailoRT's C++
//! InferModel API.
//!
//! - [`status`]: HailoRT's status numbers and the typed errors they map to;
//! - [`hailort_library`]: libhailort found and loaded at run time, its version;
//! - [`bridge_search`]: the bridge libraries' names (one per HailoRT major)
//!   and the folders they are looked for in;
//! - [`ffi`]: the bridge's C declarations, resolved in a bridge library (a
//!   C++ bridge, or the CI stand-in);
//! - [`bridge`]: the bridge loaded for the installed HailoRT, safe device and
//!   model handles, buffer checks;
//! - [`split_networks`]: the split's two static networks behind one trait,
//!   and their ONNX stand-ins; [`networks`]: the same as HEFs on the device;
//! - [`split`]: the split's vision encoder, embeddings and caption loop;
//! - [`backend`]: the split as the engine's [`crate::engine::backend::Backend`],
//!   with the device's state and its idle release.

pub mod backend;
pub mod bridge;
pub mod bridge_search;
pub mod ffi;
pub mod hailort_library;
pub mod networks;
pub mod split;
pub mod split_networks;
pub mod status;

pub use backend::{DEFAULT_IDLE_RELEASE_S, HailoBackend};
pub use bridge::{Bridge, BridgeSource, Device, Model, StreamInfo};
pub use bridge_search::{BRIDGE_DIR_ENV, INSTALLED_BRIDGE_DIR, bridge_file_name};
pub use hailort_library::{HAILORT_LIBRARY_ENV, HailoRtLibrary, HailoRtVersion};
pub use networks::{HailoNetworks, HailoSettings, SplitShapes};
pub use status::{Call, HailoError, Status};
