//! Requests an application attaches to a buffer (`FlorenceRequestMeta`).

use std::time::{Duration, Instant};

use gst::glib;

use super::settings::{Settings, without_untaken_inputs};
use super::{
    ERROR_CANCELLED, ERROR_INFERENCE_FAILED, ERROR_INVALID_REQUEST, ERROR_TIMED_OUT,
    REQUEST_META_NAME,
};
use crate::engine::pipeline::{EngineError, Interruption, Request};
use crate::engine::task::{Task, parse_region};

/// The request an application attached to one buffer (`FlorenceRequestMeta`).
pub(super) struct BufferRequest {
    pub(super) id: String,
    /// Layered over the element's properties, or why the meta is invalid.
    pub(super) request: Result<Request, String>,
    /// `deadline-us`, on `g_get_monotonic_time()`'s clock.
    pub(super) deadline: Option<Instant>,
}

/// A `g_get_monotonic_time()` value (microseconds) as an `Instant`.
fn monotonic_to_instant(us: i64) -> Instant {
    let now = Instant::now();
    let ahead = us.saturating_sub(glib::monotonic_time());
    now + Duration::from_micros(ahead.max(0) as u64)
}

/// Whether `buf` carries its own request.
pub(super) fn has_request(buf: &gst::BufferRef) -> bool {
    gst::meta::CustomMeta::from_buffer(buf, REQUEST_META_NAME).is_ok()
}

pub(super) fn buffer_request(buf: &gst::BufferRef, settings: &Settings) -> Option<BufferRequest> {
    let meta = gst::meta::CustomMeta::from_buffer(buf, REQUEST_META_NAME).ok()?;
    let s = meta.structure();
    let id = s.get::<String>("id").unwrap_or_default();
    let deadline = s.get::<i64>("deadline-us").ok().map(monotonic_to_instant);
    let parse = || -> Result<Request, String> {
        let mut req = settings.request_as_set();
        if let Ok(task) = s.get::<String>("task") {
            req.task = task.parse::<Task>().map_err(|e| e.to_string())?;
        }
        // Inputs from the properties that this buffer's task does not take are dropped.
        let mut req = without_untaken_inputs(req);
        if let Ok(text) = s.get::<String>("text") {
            // The buffer's own input replaces the properties' (a <loc_> text
            // replaces the `region` property for region tasks).
            req.input.region = None;
            req.input.text = Some(text);
        }
        if s.has_field("region") {
            req.input.text = req.input.text.filter(|_| s.has_field("text"));
        }
        if let Ok(region) = s.get::<gst::Array>("region") {
            let v: Vec<f64> = region.iter().filter_map(|v| v.get::<f64>().ok()).collect();
            match v[..] {
                [x1, y1, x2, y2] => req.input.region = Some([x1, y1, x2, y2]),
                _ => return Err("region must be an array of 4 doubles".into()),
            }
        } else if let Ok(region) = s.get::<String>("region") {
            req.input.region = Some(parse_region(&region)?);
        }
        let count = |name: &str| s.get::<u32>(name).ok().map(|v| v as usize);
        if let Some(v) = count("max-new-tokens") {
            req.options.max_new_tokens = Some(v);
        }
        if let Some(v) = count("min-new-tokens") {
            req.options.min_new_tokens = Some(v);
        }
        if let Some(v) = count("num-beams") {
            req.options.num_beams = Some(v);
        }
        if let Ok(t) = s.get::<f64>("temperature") {
            req.options.temperature = (t != 0.0).then_some(t as f32);
        }
        if let Ok(seed) = s.get::<u64>("seed") {
            req.options.seed = Some(seed);
        }
        Ok(req)
    };
    Some(BufferRequest {
        id,
        request: parse(),
        deadline,
    })
}

/// Whether an engine error is the request's fault (bad task input or parameters).
pub(super) fn error_kind(e: &EngineError) -> &'static str {
    match e {
        EngineError::Prompt(_) | EngineError::Parameter(_) | EngineError::Image(_) => {
            ERROR_INVALID_REQUEST
        }
        EngineError::Interrupted(Interruption::DeadlineExceeded) => ERROR_TIMED_OUT,
        EngineError::Interrupted(Interruption::Cancelled) => ERROR_CANCELLED,
        _ => ERROR_INFERENCE_FAILED,
    }
}
