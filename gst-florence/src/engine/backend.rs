//! The seam between the engine and the runtimes that run Florence-2's
//! networks. A [`Backend`] turns an image and a prompt into the decoder's
//! token sequence; everything around that (prompt building, decoding
//! parameters, the vision-feature cache, detokenising, post-processing) is
//! the engine's, written once in [`super::florence`].
//!
//! Backends: ONNX Runtime ([`super::onnx`]: every task, with the generation
//! loops of [`super::generate`]) and the Hailo split ([`super::hailo`]:
//! `<CAPTION>` on a Hailo NPU). Which ones a model loads with, and why, is
//! decided once, in [`super::load`].

use std::sync::Arc;

use super::backend_choice::BackendKind;
use super::error::EngineError;
use super::generate::{DecodeParams, Decoded};
use super::interrupt::Interrupt;
use super::onnx::graph_cache::GraphSource;
use super::onnx::signature::Graph;
use super::output::Timings;
use super::preprocess::RgbImage;
use super::shared_vision::SharedVision;
use super::task::Task;
use super::vision_cache::VisionCache;

/// What a backend's device is doing, for `/health` and the element's
/// `hailo-device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum DeviceState {
    /// Not held: not used yet, or released after the idle time.
    Released = 0,
    /// Held, and the last run succeeded.
    Connected = 1,
    /// Another process holds the chip; the next request tries again.
    Busy = 2,
    /// The device failed or went away; the next request reopens it.
    Disconnected = 3,
}

impl DeviceState {
    pub fn from_u8(v: u8) -> DeviceState {
        match v {
            1 => DeviceState::Connected,
            2 => DeviceState::Busy,
            3 => DeviceState::Disconnected,
            _ => DeviceState::Released,
        }
    }
}

/// One request, as the engine hands it to a backend.
pub struct Job<'a> {
    pub image: &'a RgbImage,
    /// `<s>` + prompt + `</s>` token ids.
    pub prompt: &'a [u32],
    pub params: &'a DecodeParams,
    /// The last image's features; a backend that encodes images at the
    /// model's size reads and fills it.
    pub vision: &'a VisionCache,
    /// The model's recent and in-flight image features, shared by its users
    /// (used when `vision` is enabled).
    pub shared_vision: &'a Arc<SharedVision>,
    /// How much slower a decoder run shared with other requests may be than
    /// this request's run alone ([`super::onnx::session::SessionOptions::decode_slowdown`]).
    pub decode_slowdown: f64,
}

/// A backend's answer: the decoder sequence and the stages it timed.
pub struct Generated {
    pub decoded: Decoded,
    pub timings: Timings,
}

/// A loaded backend. One request at a time runs on it (each already uses
/// the cores or the device it has); callers share it between threads.
pub trait Backend: Send + Sync {
    fn kind(&self) -> BackendKind;

    /// Whether it runs `task` (the Hailo split only `<CAPTION>`: its HEFs
    /// have that prompt built in).
    fn serves(&self, task: Task) -> bool;

    /// The decoder sequence (start token first) for one request.
    fn generate(&self, job: Job<'_>, interrupt: &Interrupt) -> Result<Generated, EngineError>;

    /// Where each ONNX graph was loaded from (the optimised-graph cache or the model file).
    fn graph_sources(&self) -> &[(Graph, GraphSource)] {
        &[]
    }

    /// Requests decoding now in its decode batch (0 when it has none).
    fn decoding(&self) -> usize {
        0
    }

    /// Decoder runs so far with 1, 2, ... requests together (at index n - 1;
    /// empty when it does not batch).
    fn decode_steps(&self) -> Vec<u64> {
        Vec::new()
    }

    /// Holds its decode batch as a request encoding its image and prompt
    /// does, until the returned value drops; `None` when it does not batch.
    fn arriving(&self) -> Option<Box<dyn Send + '_>> {
        None
    }

    /// Its device's state; `None` without a device.
    fn device_state(&self) -> Option<DeviceState> {
        None
    }
}
