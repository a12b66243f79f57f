//! A result as a `GstVideoOverlayComposition` for a frame of the video's size.

use crate::draw;

/// GStreamer's overlay pixel layout (`GST_VIDEO_OVERLAY_COMPOSITION_FORMAT_RGB`):
/// ARGB in a native-endian 32-bit word.
#[cfg(target_endian = "little")]
const FORMAT: gst_video::VideoFormat = gst_video::VideoFormat::Bgra;
#[cfg(target_endian = "big")]
const FORMAT: gst_video::VideoFormat = gst_video::VideoFormat::Argb;
use crate::engine::postprocess::TaskResult;

/// `result`, whose coordinates are in a `from` (width, height) frame, drawn
/// for a `width` x `height` frame; `None` for an empty frame.
pub(super) fn of(
    result: &TaskResult,
    from: [u32; 2],
    width: u32,
    height: u32,
) -> Option<gst_video::VideoOverlayComposition> {
    let mut result = result.clone();
    // A result taken before a scaler carries its own frame size; one whose
    // meta a scaler transformed already matches.
    if from[0] > 0 && from[1] > 0 && from != [width, height] {
        result.scale(
            f64::from(width) / f64::from(from[0]),
            f64::from(height) / f64::from(from[1]),
        );
    }
    let canvas = draw::overlay(width, height, &result)?;
    // tiny-skia's pixels are premultiplied RGBA in memory.
    let mut pixels = canvas.take();
    for px in pixels.chunks_exact_mut(4) {
        let [r, g, b, a] = [px[0], px[1], px[2], px[3]];
        let ordered = match FORMAT {
            gst_video::VideoFormat::Bgra => [b, g, r, a],
            _ => [a, r, g, b],
        };
        px.copy_from_slice(&ordered);
    }
    let mut buffer = gst::Buffer::from_mut_slice(pixels);
    gst_video::VideoMeta::add(
        buffer.get_mut()?,
        gst_video::VideoFrameFlags::empty(),
        FORMAT,
        width,
        height,
    )
    .ok()?;
    let rectangle = gst_video::VideoOverlayRectangle::new_raw(
        &buffer,
        0,
        0,
        width,
        height,
        gst_video::VideoOverlayFormatFlags::PREMULTIPLIED_ALPHA,
    );
    gst_video::VideoOverlayComposition::new(Some(&rectangle)).ok()
}
