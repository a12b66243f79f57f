//! `florenceoverlay`: draws the newest `florencecaption` result on the video
//! passing through: regions outlined with their labels, text results as a
//! band along the bottom ([`crate::draw`]).
//!
//! Live-safe: a buffer is never held back. Each buffer that carries a result
//! (the `FlorenceCaptionMeta`) replaces the drawing; buffers without one get
//! the last drawing until the next result. The drawing is a
//! `GstVideoOverlayComposition`: attached as a meta when downstream says it
//! renders those (the allocation query), so a sink or encoder that composes
//! in hardware gets it untouched; blended into the frame otherwise.

use gst::glib;
use gst::prelude::*;

mod composition;
mod imp;

glib::wrapper! {
    pub struct FlorenceOverlay(ObjectSubclass<imp::FlorenceOverlay>)
        @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "florenceoverlay",
        gst::Rank::NONE,
        FlorenceOverlay::static_type(),
    )
}
