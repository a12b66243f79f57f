//! Requests an application attaches to a buffer (`FlorenceRequestMeta`):
//! decoded (and so validated: applications are untrusted) by
//! [`crate::protocol::BufferRequest::decode`], then layered over the
//! element's properties.

use std::time::{Duration, Instant};

use gst::glib;

use super::REQUEST_META_NAME;
use super::settings::{Settings, without_untaken_inputs};
use crate::engine::Request;
use crate::protocol::{BufferRequest, RequestParams};

/// The request an application attached to one buffer, ready to run.
pub(super) struct PendingRequest {
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

/// The request on `buf`, if it carries one.
pub(super) fn buffer_request(buf: &gst::BufferRef, settings: &Settings) -> Option<PendingRequest> {
    let meta = gst::meta::CustomMeta::from_buffer(buf, REQUEST_META_NAME).ok()?;
    Some(parse_request(meta.structure(), settings))
}

/// A request structure layered over the element's properties.
pub(super) fn parse_request(s: &gst::StructureRef, settings: &Settings) -> PendingRequest {
    match BufferRequest::decode(s) {
        Ok(r) => PendingRequest {
            id: r.id.unwrap_or_default(),
            request: Ok(layered(&r.params, settings)),
            deadline: r.deadline_us.map(monotonic_to_instant),
        },
        Err(e) => PendingRequest {
            id: BufferRequest::id_of(s),
            request: Err(e.to_string()),
            deadline: None,
        },
    }
}

/// `params` over the element's properties: what the buffer does not say, the
/// properties do.
fn layered(params: &RequestParams, settings: &Settings) -> Request {
    let mut req = settings.request_as_set();
    if let Some(task) = params.task {
        req.task = task;
    }
    // Inputs from the properties that this buffer's task does not take are dropped.
    let mut req = without_untaken_inputs(req);
    if params.text.is_some() || params.region.is_some() {
        // The buffer's own input replaces the properties' (a <loc_> text
        // replaces the `region` property for region tasks).
        req.input.text = params.text.clone();
        req.input.region = params.region;
    }
    let count = |v: Option<u32>| v.map(|v| v as usize);
    let o = &mut req.options;
    if let Some(v) = count(params.max_new_tokens) {
        o.max_new_tokens = Some(v);
    }
    if let Some(v) = count(params.min_new_tokens) {
        o.min_new_tokens = Some(v);
    }
    if let Some(v) = count(params.num_beams) {
        o.num_beams = Some(v);
    }
    if let Some(t) = params.temperature {
        o.temperature = (t != 0.0).then_some(t as f32);
    }
    if let Some(seed) = params.seed {
        o.seed = Some(seed);
    }
    req
}

/// `buffer` (made writable: a shallow copy if it is shared) with `request`'s
/// fields as its `FlorenceRequestMeta`, replacing any it had: what the
/// `add-request` action signal does, for bindings whose custom-meta structure
/// is a copy (PyGObject). The fields are copied as they are: the element
/// decodes them when the buffer arrives.
pub(super) fn add_request(mut buffer: gst::Buffer, request: &gst::StructureRef) -> gst::Buffer {
    let b = buffer.make_mut();
    let mut meta = match gst::meta::CustomMeta::from_mut_buffer(b, REQUEST_META_NAME) {
        Ok(meta) => meta,
        Err(_) => match gst::meta::CustomMeta::add(b, REQUEST_META_NAME) {
            Ok(meta) => meta,
            // Only fails if the meta is not registered, which plugin_init does.
            Err(_) => return buffer,
        },
    };
    let s = meta.mut_structure();
    let old: Vec<glib::GString> = s.fields().map(|f| f.to_owned()).collect();
    for name in old {
        s.remove_field(name.as_str());
    }
    for (name, value) in request.iter() {
        s.set_value(name, value.clone());
    }
    buffer
}
