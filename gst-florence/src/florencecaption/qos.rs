//! Quality of service: what a downstream sink's QoS events change.
//!
//! Every-frame mode (with `qos`, on by default as for video filters): a frame
//! already late for the sink when it arrives (its running time before the
//! earliest time the last QoS event allows) passes through unanalysed,
//! without a result meta, counted in `frames-skipped` and reported by a QoS
//! message, so the stream catches up instead of falling further behind. A
//! buffer carrying its own request (`FlorenceRequestMeta`) is always analysed:
//! an application is waiting for that answer.
//!
//! Live mode ignores QoS for analysis: buffers never wait for it, and the
//! worker always takes the newest frame anyway.
//!
//! QoS events go on upstream either way (the base class's own QoS dropping is
//! bypassed: it would drop late frames instead of passing them on).

use parking_lot::Mutex;

use gst::prelude::*;
use gst_base::prelude::*;

use super::category::CAT;
use super::settings::Stats;

/// The earliest running time worth analysing, from the last QoS event.
#[derive(Default)]
pub(super) struct Qos {
    earliest: Mutex<Option<gst::ClockTime>>,
}

impl Qos {
    /// A new stream, or a flush: nothing is late yet.
    pub(super) fn reset(&self) {
        *self.earliest.lock() = None;
    }

    fn update(&self, diff: i64, timestamp: Option<gst::ClockTime>) {
        let Some(ts) = timestamp else { return };
        // As GstVideoDecoder: when late, aim twice the lateness ahead to catch up.
        let earliest = if diff > 0 {
            ts.saturating_add(gst::ClockTime::from_nseconds(2 * diff as u64))
        } else {
            ts.saturating_sub(gst::ClockTime::from_nseconds(diff.unsigned_abs()))
        };
        *self.earliest.lock() = Some(earliest);
    }

    fn earliest(&self) -> Option<gst::ClockTime> {
        *self.earliest.lock()
    }

    /// Notes a QoS event on `element`'s src pad and sends it upstream.
    pub(super) fn handle(&self, element: &gst_base::BaseTransform, event: gst::Event) -> bool {
        if let gst::EventView::Qos(q) = event.view() {
            let (_, _, diff, timestamp) = q.get();
            self.update(diff, timestamp);
        }
        match element.static_pad("sink") {
            Some(sink) => sink.push_event(event),
            None => false,
        }
    }

    /// Every-frame mode: whether `buf` is already late for the sink, so its
    /// analysis is skipped (counted in `stats`; a QoS message says so).
    pub(super) fn too_late(
        &self,
        obj: &gst_base::BaseTransform,
        buf: &gst::BufferRef,
        stats: &Mutex<Stats>,
    ) -> bool {
        if !obj.is_qos() {
            return false;
        }
        let Some(earliest) = self.earliest() else {
            return false;
        };
        let segment = obj.segment();
        let Some(segment) = segment.downcast_ref::<gst::ClockTime>() else {
            return false;
        };
        let Some(running_time) = segment.to_running_time(buf.pts()) else {
            return false;
        };
        if running_time > earliest {
            return false;
        }
        gst::debug!(
            CAT,
            obj = obj,
            "skipping the analysis of frame {} (running time {running_time}): late, earliest {earliest}",
            buf.pts().display()
        );
        let (analysed, skipped) = {
            let mut stats = stats.lock();
            stats.frames_skipped += 1;
            (stats.captions_total, stats.frames_skipped)
        };
        let msg = gst::message::Qos::builder(true)
            .running_time(running_time)
            .stream_time(segment.to_stream_time(buf.pts()))
            .timestamp(buf.pts())
            .duration(buf.duration())
            .values(
                earliest.nseconds() as i64 - running_time.nseconds() as i64,
                1.0,
                1_000_000,
            )
            .stats(
                gst::format::Buffers::from_u64(analysed),
                gst::format::Buffers::from_u64(skipped),
            )
            .src(obj)
            .build();
        let _ = obj.post_message(msg);
        true
    }
}
