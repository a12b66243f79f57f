//! The element's view of a device backend: the `hailo-device` property.
//! Which backend runs is the engine's choice ([`crate::engine::load`]); the
//! `error-kind`s of device failures are [`crate::protocol::ErrorKind`]'s.

use gst::glib;
use gst::prelude::*;

use crate::engine::{DeviceState, Florence};

/// Read-only property: who runs captions and the device's state.
pub(super) const DEVICE_PROPERTY: &str = "hailo-device";

pub(super) fn device_property() -> glib::ParamSpec {
    glib::ParamSpecString::builder(DEVICE_PROPERTY)
        .nick("Hailo device")
        .blurb("not-used (captions on ONNX Runtime, or not started), released (idle, reopened by the next caption), connected, busy (held by another process), disconnected (failed; the next caption reopens it)")
        .read_only()
        .build()
}

pub(super) fn device_nick(florence: Option<&Florence>) -> &'static str {
    match florence.and_then(Florence::device_state) {
        None => "not-used",
        Some(DeviceState::Released) => "released",
        Some(DeviceState::Connected) => "connected",
        Some(DeviceState::Busy) => "busy",
        Some(DeviceState::Disconnected) => "disconnected",
    }
}
