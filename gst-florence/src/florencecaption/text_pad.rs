//! The `text_src` request pad: results as `text/x-raw, format=utf8` buffers.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use gst::prelude::*;

use super::category::CAT;

/// The `text_src` pad, when requested, and whether its stream has started.
#[derive(Default)]
pub(super) struct TextPad {
    pad: Mutex<Option<gst::Pad>>,
    /// stream-start, caps and segment went out on `text_src`.
    started: AtomicBool,
}

impl TextPad {
    fn pad(&self) -> Option<gst::Pad> {
        self.pad.lock().clone()
    }

    /// Adds `text_src` to `element` (once: a second request gets `None`).
    pub(super) fn request(&self, element: &gst::Element, pad: gst::Pad) -> Option<gst::Pad> {
        let mut slot = self.pad.lock();
        if slot.is_some() {
            gst::warning!(CAT, obj = element, "text_src is already requested");
            return None;
        }
        self.started.store(false, Ordering::SeqCst);
        if let Err(e) = element.add_pad(&pad) {
            gst::warning!(CAT, obj = element, "cannot add text_src: {e}");
            return None;
        }
        *slot = Some(pad.clone());
        Some(pad)
    }

    pub(super) fn release(&self, element: &gst::Element, pad: &gst::Pad) {
        let mut slot = self.pad.lock();
        if slot.as_ref() == Some(pad) {
            *slot = None;
            drop(slot);
            let _ = pad.set_active(false);
            let _ = element.remove_pad(pad);
        }
    }

    /// A new stream: stream-start, caps and segment go out again before the next text.
    pub(super) fn reset(&self) {
        self.started.store(false, Ordering::SeqCst);
    }

    /// Sends stream-start, caps and the video's segment on `text_src` once.
    fn start(&self, element: &gst::Element, pad: &gst::Pad) {
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let id = format!("{}/text_src", element.name());
        pad.push_event(gst::event::StreamStart::new(&id));
        pad.push_event(gst::event::Caps::new(
            &gst::Caps::builder("text/x-raw")
                .field("format", "utf8")
                .build(),
        ));
        let segment = element
            .static_pad("sink")
            .and_then(|p| p.sticky_event::<gst::event::Segment>(0))
            .filter(|e| e.segment().format() == gst::Format::Time)
            .map(|e| e.copy())
            .unwrap_or_else(|| {
                gst::event::Segment::new(&gst::FormattedSegment::<gst::ClockTime>::new())
            });
        pad.push_event(segment);
    }

    /// A result as a `text/x-raw, format=utf8` buffer at the analysed frame's time.
    pub(super) fn push(
        &self,
        element: &gst::Element,
        text: &str,
        pts: Option<gst::ClockTime>,
        duration: Option<gst::ClockTime>,
    ) {
        let Some(pad) = self.pad() else { return };
        if !pad.is_linked() {
            return;
        }
        self.start(element, &pad);
        let mut buf = gst::Buffer::from_mut_slice(text.as_bytes().to_vec());
        if let Some(b) = buf.get_mut() {
            b.set_pts(pts);
            b.set_duration(duration);
        }
        match pad.push(buf) {
            Ok(_) | Err(gst::FlowError::Flushing) | Err(gst::FlowError::NotLinked) => {}
            Err(e) => gst::debug!(CAT, obj = element, "text_src push: {e:?}"),
        }
    }

    /// Flushes, segments, GAPs and EOS reach the text branch too.
    pub(super) fn forward(&self, element: &gst::Element, event: &gst::Event) {
        let Some(pad) = self.pad() else { return };
        match event.view() {
            gst::EventView::FlushStart(_) | gst::EventView::FlushStop(_) => {
                pad.push_event(event.clone());
            }
            gst::EventView::Segment(_) if self.started.load(Ordering::SeqCst) => {
                pad.push_event(event.clone());
            }
            // Time with no frame has no text either: say so, or a prerolling
            // sink, a subtitle encoder or a muxer on text_src waits for text
            // that is not coming (a stream whose frames are all dropped
            // upstream never reached PAUSED).
            gst::EventView::Gap(_) | gst::EventView::Eos(_) => {
                self.start(element, &pad);
                pad.push_event(event.clone());
            }
            _ => {}
        }
    }
}
