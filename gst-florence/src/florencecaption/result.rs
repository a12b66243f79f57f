//! Results as buffer metas (`FlorenceCaptionMeta`, region metas for their
//! regions and, on GStreamer 1.24 and newer, analytics object detections)
//! and bus messages (`florence-caption`).

use std::time::Instant;

use gst::prelude::*;

use super::category::CAT;
use super::regions::attach_regions;
use super::{MESSAGE_NAME, META_NAME};
use crate::analytics::{Detection, analytics};
use crate::engine::postprocess::TaskResult;
use crate::engine::{Output, Request};
use crate::protocol::{
    CaptionResult, ErrorKind, Failure, RESULTS_NAME, RequestParams, ResultField,
};

/// One result, as attached to buffers and posted on the bus.
#[derive(Debug, Clone)]
pub(super) struct Caption {
    pub(super) task: String,
    pub(super) text: String,
    pub(super) result: TaskResult,
    pub(super) inference_ms: f64,
    /// Of `inference_ms`, queued behind other users of a shared model.
    pub(super) queue_wait_ms: f64,
    /// The most requests decoded together with it in one run (1: alone).
    pub(super) decode_batch: u32,
    pub(super) token_count: u64,
    pub(super) image_size: [u32; 2],
    /// The vision features came from the previous analysis of the same frame.
    pub(super) vision_cached: bool,
    pub(super) frame_pts: Option<gst::ClockTime>,
    pub(super) produced: Instant,
    pub(super) serial: u64,
    pub(super) request_id: Option<String>,
    /// What was asked (task, input, generation options) as the result's `request` field.
    pub(super) asked: RequestParams,
}

impl Caption {
    pub(super) fn from_output(
        out: &Output,
        request: &Request,
        pts: Option<gst::ClockTime>,
        serial: u64,
    ) -> Self {
        Caption {
            task: out.task.clone(),
            text: out.result.text(),
            result: out.result.clone(),
            inference_ms: out.timings.total_ms,
            queue_wait_ms: out.timings.queue_wait_ms,
            decode_batch: u32::try_from(out.timings.decode_batch).unwrap_or(u32::MAX),
            token_count: out.token_count as u64,
            image_size: out.image_size,
            vision_cached: out.timings.vision_cached,
            frame_pts: pts,
            produced: Instant::now(),
            serial,
            request_id: None,
            asked: RequestParams::asked_of(request),
        }
    }

    /// The result as the protocol's structure named `name` (meta or message).
    pub(super) fn structure(&self, name: &str, model: &str, fresh: bool) -> gst::Structure {
        CaptionResult {
            task: self.task.clone(),
            text: self.text.clone(),
            result: self.result.clone(),
            inference_ms: self.inference_ms,
            queue_wait_ms: self.queue_wait_ms,
            decode_batch: self.decode_batch,
            model: model.to_owned(),
            frame_pts: self.frame_pts.map(gst::ClockTime::nseconds),
            fresh,
            age_ms: self.produced.elapsed().as_secs_f64() * 1e3,
            token_count: self.token_count,
            image_size: self.image_size,
            vision_cached: self.vision_cached,
            asked: self.asked.clone(),
            request_id: self.request_id.clone(),
            element: None,
        }
        .encode(name)
    }
}

/// Attaches `element`'s result `cap` to `buf`, a frame of `frame` size: its
/// fields to the `FlorenceCaptionMeta` ([`attach`]), its regions as region metas.
pub(super) fn attach_caption(
    buf: &mut gst::BufferRef,
    element: &str,
    cap: &Caption,
    model: &str,
    fresh: bool,
    frame: [u32; 2],
) {
    let detections = attach_regions(buf, element, &cap.task, &cap.result, cap.image_size, frame);
    add_detections(buf, &detections);
    attach(buf, element, cap.structure(META_NAME, model, fresh));
}

/// The regions as the analytics meta's object detections, where the running
/// GStreamer has it (why not is logged once per process).
fn add_detections(buf: &mut gst::BufferRef, detections: &[Detection]) {
    static UNAVAILABLE: std::sync::Once = std::sync::Once::new();
    match analytics() {
        Ok(a) => {
            if !a.add_detections(buf, detections) {
                gst::warning!(CAT, "the analytics meta refused a detection");
            }
        }
        Err(reason) => UNAVAILABLE.call_once(|| {
            gst::info!(CAT, "regions as region metas only: {reason}");
        }),
    }
}

/// Adds `element`'s result to `buf`'s `FlorenceCaptionMeta`.
///
/// A buffer has one such meta: the first instance on its way (upstream-most)
/// puts its result at the top level, and every instance puts its own in the
/// meta's `results` structure, under its element name, so an application
/// reads any instance's result as `results.<name>` (a GstCustomMeta can be
/// fetched by name only once per buffer).
///
/// The meta is added again on every call, so it is the buffer's newest:
/// transforms run in the order metas were added, and its scale transform
/// must come after the region metas' (`regions::restore_params`).
pub(super) fn attach(buf: &mut gst::BufferRef, element: &str, mut own: gst::Structure) {
    own.set(ResultField::Element.name(), element);
    let mut fields = match gst::meta::CustomMeta::from_mut_buffer(buf, META_NAME) {
        Ok(meta) => {
            let fields = meta.structure().to_owned();
            if let Err(e) = meta.remove() {
                gst::warning!(CAT, "cannot replace {META_NAME}: {e}");
                return;
            }
            fields
        }
        Err(_) => own.clone(),
    };
    let mut results = fields
        .get::<gst::Structure>(ResultField::Results.name())
        .unwrap_or_else(|_| gst::Structure::new_empty(RESULTS_NAME));
    results.set(element, own);
    fields.set(ResultField::Results.name(), results);
    match gst::meta::CustomMeta::add(buf, META_NAME) {
        Ok(mut meta) => {
            let dst = meta.mut_structure();
            for (name, value) in fields.iter() {
                dst.set_value(name, value.clone());
            }
        }
        Err(e) => gst::warning!(CAT, "cannot add {META_NAME}: {e}"),
    }
}

/// The meta fields of a request that produced no result.
pub(super) fn error_fields(request_id: &str, kind: ErrorKind, message: &str) -> gst::Structure {
    Failure {
        request_id: request_id.to_owned(),
        kind,
        message: message.to_owned(),
    }
    .encode(META_NAME)
}

/// Posts `cap` on the bus as `element`'s `florence-caption` message.
pub(super) fn post_result(element: &gst::Element, cap: &Caption, model: &str) {
    let mut s = cap.structure(MESSAGE_NAME, model, true);
    // As on the meta ([`attach`]): an application with several instances
    // tells their messages apart without comparing sources.
    s.set(ResultField::Element.name(), element.name());
    let msg = gst::message::Element::builder(s).src(element).build();
    let _ = element.post_message(msg);
}
