//! The element's Hailo backend: attaching the split to the loaded model at
//! start, and the `error-kind`s of device failures. Captions run on the
//! device; other tasks stay on ONNX Runtime.

use std::path::Path;

use gst::glib;
use gst::prelude::*;

use super::Backend;
use super::settings::HailoProps;
use crate::engine::SessionOptions;
use crate::engine::hailo::HailoError;
use crate::engine::hailo_caption::HailoCaptioner;
use crate::engine::pipeline::{EngineError, Florence};

/// `error-kind` of a request refused because another process holds the Hailo
/// device (retry later).
pub const ERROR_DEVICE_BUSY: &str = "device-busy";
/// `error-kind` of a request the Hailo device failed on (lost, timed out, ...);
/// the next request reopens the device.
pub const ERROR_DEVICE: &str = "device-error";

/// The `error-kind` of a device failure, `None` for other errors.
pub(super) fn device_error_kind(e: &EngineError) -> Option<&'static str> {
    match e {
        EngineError::Device(d) if d.is_busy() => Some(ERROR_DEVICE_BUSY),
        EngineError::Device(_) => Some(ERROR_DEVICE),
        _ => None,
    }
}

/// What runs captions, and why (logged at start).
pub(super) struct Choice {
    pub hailo: bool,
    pub reason: String,
}

/// Attaches the Hailo split to `florence` as `backend` asks.
///
/// `hailo`: the bridge, the HEFs and the device are checked now; a missing
/// bridge, driver or HEF, or a HEF for another chip, stops start-up with the
/// cause; a busy device does not (the first caption tries again).
/// `auto`: Hailo when all of that works and the device answers now, else
/// ONNX Runtime, with the reason.
pub(super) fn attach(
    backend: Backend,
    props: &HailoProps,
    dir: &Path,
    options: &SessionOptions,
    florence: &mut Florence,
) -> Result<Choice, gst::ErrorMessage> {
    let onnx = |reason: String| Choice {
        hailo: false,
        reason,
    };
    // hailo-florence's layout has only the split: the device or nothing.
    let hailo_only = !florence.layout().has_text_graphs();
    if backend == Backend::Onnx {
        if hailo_only {
            return Err(gst::error_msg!(
                gst::LibraryError::Settings,
                (
                    "backend=onnx cannot run {}: it has hailo-florence's layout (HEFs, no ONNX text graphs); use backend=hailo or auto, or a model in the onnx-community layout",
                    dir.display()
                )
            ));
        }
        return Ok(onnx("backend=onnx".into()));
    }
    let backend = if hailo_only { Backend::Hailo } else { backend };
    let (settings, idle_release) = props.engine();
    let opened = HailoCaptioner::open(dir, options, settings, idle_release).and_then(|c| {
        match c.open_device() {
            Ok(()) => Ok((c, None)),
            Err(e) if e.is_busy() && backend == Backend::Hailo => Ok((c, Some(e))),
            Err(e) => Err(EngineError::Device(e)),
        }
    });
    match (backend, opened) {
        (_, Ok((captioner, busy))) => {
            let reason = match busy {
                Some(e) => format!("backend=hailo; {e} (the first caption tries again)"),
                None => format!(
                    "{}: the bridge loads, the device answers and both HEFs fit",
                    if hailo_only {
                        "hailo-florence's layout runs on the Hailo device"
                    } else if backend == Backend::Hailo {
                        "backend=hailo"
                    } else {
                        "backend=auto chose Hailo"
                    }
                ),
            };
            florence.attach_hailo(captioner);
            Ok(Choice {
                hailo: true,
                reason,
            })
        }
        (Backend::Hailo, Err(e)) => Err(gst::error_msg!(
            gst::LibraryError::Settings,
            (
                "{}: {}",
                if hailo_only {
                    "hailo-florence's layout (HEFs, no ONNX text graphs) needs a Hailo device"
                } else {
                    "backend=hailo"
                },
                e
            )
        )),
        (_, Err(e)) => Ok(onnx(format!(
            "backend=auto chose ONNX Runtime: {}",
            match &e {
                EngineError::Device(HailoError::NotBuilt) =>
                    "this build has no Hailo support".into(),
                other => other.to_string(),
            }
        ))),
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
    use crate::engine::hailo_caption::DeviceState;
    match florence
        .and_then(Florence::hailo)
        .map(HailoCaptioner::device_state)
    {
        None => "not-used",
        Some(DeviceState::Released) => "released",
        Some(DeviceState::Connected) => "connected",
        Some(DeviceState::Busy) => "busy",
        Some(DeviceState::Disconnected) => "disconnected",
    }
}
