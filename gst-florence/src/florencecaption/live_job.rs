//! What the streaming thread hands the live worker: one frame with its request.

use std::time::{Duration, Instant};

use crate::engine::Request;
use crate::engine::preprocess::RgbImage;

/// A frame handed to the live worker: already RGB, or a private copy of the
/// raw frame that the worker converts (keeping conversion off the streaming thread).
pub(super) enum Frame {
    Rgb(RgbImage),
    Raw(gst::Buffer, gst_video::VideoInfo),
}

pub(super) struct Job {
    pub(super) frame: Frame,
    pub(super) pts: Option<gst::ClockTime>,
    pub(super) request: Request,
    pub(super) generation: u64,
    pub(super) interval_ms: u64,
    /// When the streaming thread handed the frame over.
    pub(super) dispatched: Instant,
    /// The stream's frame duration (buffer duration, else the caps' framerate).
    pub(super) frame_duration: Option<Duration>,
}
