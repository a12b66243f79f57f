//! The latency the element adds, for the LATENCY query: the `latency`
//! property, or when it is 0 the analysis time measured so far.
//!
//! Every-frame mode holds each buffer for its analysis, so its video output is
//! that much late; `text_src` carries each result at its frame's time once the
//! analysis is done, in both modes. A synchronised sink only shows them if
//! the pipeline's latency covers that, so the element reports it as analysis
//! elements do (upstream's latency plus its own) and posts a latency message
//! when its estimate grows, so the application redistributes the latency.

use parking_lot::Mutex;
use std::time::Duration;

use gst::prelude::*;

use super::Mode;
use super::category::CAT;

/// Which output a latency is asked for.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Output {
    Video,
    Text,
}

/// The measured analysis time, with headroom, as last reported.
#[derive(Default)]
pub(super) struct LatencyEstimate {
    reported: Mutex<Option<gst::ClockTime>>,
}

impl LatencyEstimate {
    /// Records one analysis (frame hand-over to result); true when the
    /// estimate grew.
    fn grow(&self, took: Duration) -> bool {
        let took = gst::ClockTime::from_nseconds(took.as_nanos() as u64);
        let mut reported = self.reported.lock();
        if reported.is_some_and(|r| took <= r) {
            return false;
        }
        // A quarter of headroom: analysis times vary, and each growth costs
        // the pipeline a latency redistribution.
        *reported = Some(took + took / 4);
        true
    }

    fn get(&self) -> gst::ClockTime {
        self.reported.lock().unwrap_or(gst::ClockTime::ZERO)
    }

    /// A new model or stream: measure again.
    pub(super) fn reset(&self) {
        *self.reported.lock() = None;
    }

    /// What the element adds on `output` in `mode`: the configured bound
    /// (`latency`, ms) or the estimate; nothing on live mode's video, which
    /// never waits.
    fn own(&self, output: Output, mode: Mode, configured: u32) -> gst::ClockTime {
        if output == Output::Video && mode == Mode::Live {
            return gst::ClockTime::ZERO;
        }
        if configured > 0 {
            gst::ClockTime::from_mseconds(configured.into())
        } else {
            self.get()
        }
    }

    /// Answers a LATENCY query on `element`'s `output`: upstream's latency
    /// plus the element's (in `mode`, with `latency` = `configured`).
    pub(super) fn query(
        &self,
        element: &gst::Element,
        q: &mut gst::query::Latency,
        output: Output,
        (mode, configured): (Mode, u32),
    ) -> bool {
        let mut upstream = gst::query::Latency::new();
        let Some(sink) = element.static_pad("sink") else {
            return false;
        };
        if !sink.peer_query(&mut upstream) {
            return false;
        }
        let (live, min, max) = upstream.result();
        if !live {
            q.set(live, min, max);
            return true;
        }
        let own = self.own(output, mode, configured);
        gst::debug!(
            CAT,
            obj = element,
            "latency on {}: upstream {min} + own {own}",
            if output == Output::Video {
                "src"
            } else {
                "text_src"
            }
        );
        q.set(live, min + own, max.opt_add(own));
        true
    }

    /// Records one analysis's time; tells the application when the measured
    /// latency grew, or logs when the configured bound (`latency`, ms) was
    /// too small.
    pub(super) fn observe(&self, element: &gst::Element, took: Duration, configured: u32) {
        let grew = self.grow(took);
        if configured > 0 {
            if took > Duration::from_millis(configured.into()) {
                gst::warning!(
                    CAT,
                    obj = element,
                    "an analysis took {} ms, more than latency={configured}: its results are late",
                    took.as_millis()
                );
            }
        } else if grew {
            gst::info!(
                CAT,
                obj = element,
                "analysis took {} ms: latency estimate now {}",
                took.as_millis(),
                self.get()
            );
            let _ = element.post_message(gst::message::Latency::builder().src(element).build());
        }
    }
}
