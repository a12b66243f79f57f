//! The element's view of a device backend: the `error-kind`s of device
//! failures and the `hailo-device` property. Which backend runs is the
//! engine's choice ([`crate::engine::load`]).

use gst::glib;
use gst::prelude::*;

use crate::engine::{DeviceState, EngineError, Florence};

/// `error-kind` of a request refused because another process holds the Hailo
/// device (retry later).
pub const ERROR_DEVICE_BUSY: &str = "device-busy";
/// `error-kind` of a request the Hailo device failed on (lost, timed out, ...);
/// the next request reopens the device.
pub const ERROR_DEVICE: &str = "device-error";

/// The `error-kind` of a device failure, `None` for other errors.
pub(super) fn device_error_kind(e: &EngineError) -> Option<&'static str> {
    match e {
        EngineError::Backend(f) if f.is_busy() => Some(ERROR_DEVICE_BUSY),
        EngineError::Backend(_) => Some(ERROR_DEVICE),
        _ => None,
    }
}

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
