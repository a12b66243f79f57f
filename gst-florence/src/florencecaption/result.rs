//! Results as buffer metas (`FlorenceCaptionMeta`) and bus messages (`florence-caption`).

use std::time::Instant;

use gst::prelude::*;
use gst::subclass::prelude::*;

use super::imp::{CAT, FlorenceCaption};
use super::{MESSAGE_NAME, META_NAME};
use crate::engine::{Output, Request};

/// One result, as attached to buffers and posted on the bus.
#[derive(Debug, Clone)]
pub(super) struct Caption {
    pub(super) task: String,
    pub(super) text: String,
    pub(super) result_json: String,
    pub(super) inference_ms: f64,
    pub(super) token_count: u64,
    pub(super) image_size: [u32; 2],
    /// The vision features came from the previous analysis of the same frame.
    pub(super) vision_cached: bool,
    pub(super) frame_pts: Option<gst::ClockTime>,
    pub(super) produced: Instant,
    pub(super) serial: u64,
    pub(super) request_id: Option<String>,
    /// What was asked (task, input, generation options) as the result's `request` field.
    pub(super) asked: gst::Structure,
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
            result_json: serde_json::to_string(&out.result).unwrap_or_default(),
            inference_ms: out.timings.total_ms,
            token_count: out.token_count as u64,
            image_size: out.image_size,
            vision_cached: out.timings.vision_cached,
            frame_pts: pts,
            produced: Instant::now(),
            serial,
            request_id: None,
            asked: asked(request),
        }
    }

    pub(super) fn structure(&self, name: &str, model: &str, fresh: bool) -> gst::Structure {
        let mut s = gst::Structure::builder(name)
            .field("task", &self.task)
            .field("text", &self.text)
            .field("result", &self.result_json)
            .field("inference-time-ms", self.inference_ms)
            .field("model", model)
            .field(
                "frame-pts",
                self.frame_pts.map_or(u64::MAX, gst::ClockTime::nseconds),
            )
            .field("fresh", fresh)
            .field("age-ms", self.produced.elapsed().as_secs_f64() * 1e3)
            .field("token-count", self.token_count)
            .field("image-width", self.image_size[0])
            .field("image-height", self.image_size[1])
            .field("vision-cached", self.vision_cached)
            .build();
        s.set("request", &self.asked);
        if let Some(id) = &self.request_id {
            s.set("request-id", id);
        }
        s
    }
}

/// Adds `element`'s result to `buf`'s `FlorenceCaptionMeta`.
///
/// A buffer has one such meta: the first instance on its way (upstream-most)
/// puts its result at the top level, and every instance puts its own in the
/// meta's `results` structure, under its element name, so an application
/// reads any instance's result as `results.<name>` (a GstCustomMeta can be
/// fetched by name only once per buffer).
pub(super) fn attach(buf: &mut gst::BufferRef, element: &str, mut own: gst::Structure) {
    own.set("element", element);
    let mut meta = match gst::meta::CustomMeta::from_mut_buffer(buf, META_NAME) {
        Ok(meta) => meta,
        Err(_) => match gst::meta::CustomMeta::add(buf, META_NAME) {
            Ok(mut meta) => {
                let dst = meta.mut_structure();
                for (name, value) in own.iter() {
                    dst.set_value(name, value.clone());
                }
                meta
            }
            Err(e) => {
                gst::warning!(CAT, "cannot add {META_NAME}: {e}");
                return;
            }
        },
    };
    let s = meta.mut_structure();
    let mut results = s
        .get::<gst::Structure>("results")
        .unwrap_or_else(|_| gst::Structure::new_empty("FlorenceResults"));
    results.set(element, own);
    s.set("results", results);
}

/// The meta fields of a request that produced no result.
pub(super) fn error_fields(request_id: &str, kind: &str, message: &str) -> gst::Structure {
    gst::Structure::builder(META_NAME)
        .field("request-id", request_id)
        .field("error", message)
        .field("error-kind", kind)
        .build()
}

impl FlorenceCaption {
    /// A new result: on `text_src`, in the read-only properties and on the bus.
    pub(super) fn publish(&self, cap: &Caption, model: &str, duration: Option<gst::ClockTime>) {
        self.text_pad
            .push(&self.obj(), &cap.text, cap.frame_pts, duration);
        {
            let mut stats = self.stats.lock();
            stats.last_caption = cap.text.clone();
            stats.captions_total += 1;
            stats.last_latency_ms = cap.inference_ms;
        }
        let mut s = cap.structure(MESSAGE_NAME, model, true);
        // As on the meta ([`attach`]): an application with several instances
        // tells their messages apart without comparing sources.
        s.set("element", self.obj().name());
        let msg = gst::message::Element::builder(s).src(&*self.obj()).build();
        let _ = self.obj().post_message(msg);
    }
}

/// A request as the `request` field of a result (`FlorenceRequest`): `task`, and
/// when set `text`, `region` ("x1,y1,x2,y2" in pixels), `max-new-tokens`, `min-new-tokens`,
/// `num-beams`, `temperature` and `seed`; an unset option takes the model's default.
fn asked(r: &Request) -> gst::Structure {
    let mut s = gst::Structure::builder("FlorenceRequest")
        .field("task", r.task.token())
        .build();
    if let Some(t) = &r.input.text {
        s.set("text", t);
    }
    if let Some([x1, y1, x2, y2]) = r.input.region {
        // Text, as requests take it: stock PyGObject cannot read a GstValueArray.
        s.set("region", format!("{x1},{y1},{x2},{y2}"));
    }
    let o = &r.options;
    let count = |v: Option<usize>| v.map(|v| u32::try_from(v).unwrap_or(u32::MAX));
    if let Some(v) = count(o.max_new_tokens) {
        s.set("max-new-tokens", v);
    }
    if let Some(v) = count(o.min_new_tokens) {
        s.set("min-new-tokens", v);
    }
    if let Some(v) = count(o.num_beams) {
        s.set("num-beams", v);
    }
    if let Some(t) = o.temperature {
        s.set("temperature", f64::from(t));
    }
    if let Some(seed) = o.seed {
        s.set("seed", seed);
    }
    s
}
