//! Reading a mapped video frame as RGB.

use gst_video::prelude::*;

use crate::engine::preprocess::{PixelFormat, RgbImage};

/// A YUV -> RGB converter and the input caps it was built for.
pub(super) type Converter = (gst_video::VideoInfo, gst_video::VideoConverter);

/// Reads a mapped video frame as RGB (converting YUV formats with the caps'
/// colorimetry; `converter` is rebuilt whenever `info` is not what it was built for).
pub(super) fn frame_to_rgb(
    buf: &gst::BufferRef,
    info: &gst_video::VideoInfo,
    converter: &mut Option<Converter>,
) -> Result<RgbImage, String> {
    use gst_video::VideoFormat;
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buf, info)
        .map_err(|_| "cannot map the video frame".to_owned())?;
    let (w, h) = (info.width(), info.height());
    let layout = match info.format() {
        VideoFormat::Rgb => Some(PixelFormat::Rgb),
        VideoFormat::Bgr => Some(PixelFormat::Bgr),
        VideoFormat::Rgba => Some(PixelFormat::Rgba),
        VideoFormat::Bgra => Some(PixelFormat::Bgra),
        VideoFormat::Rgbx => Some(PixelFormat::Rgbx),
        VideoFormat::Bgrx => Some(PixelFormat::Bgrx),
        VideoFormat::Gray8 => Some(PixelFormat::Gray),
        _ => None,
    };
    if let Some(layout) = layout {
        let data = frame.plane_data(0).map_err(|e| e.to_string())?;
        let stride = frame.plane_stride()[0] as usize;
        return RgbImage::from_format(w, h, layout, data, stride).map_err(|e| e.to_string());
    }
    // YUV: let GStreamer convert with the stream's colorimetry.
    let out_info = gst_video::VideoInfo::builder(VideoFormat::Rgb, w, h)
        .fps(info.fps())
        .par(info.par())
        .build()
        .map_err(|e| e.to_string())?;
    if converter
        .as_ref()
        .is_none_or(|(built_for, _)| built_for != info)
    {
        let c = gst_video::VideoConverter::new(info, &out_info, None).map_err(|e| e.to_string())?;
        *converter = Some((info.clone(), c));
    }
    let (_, converter) = converter.as_ref().ok_or("no converter")?;
    let mut out = gst::Buffer::with_size(out_info.size()).map_err(|e| e.to_string())?;
    {
        let out_ref = out.get_mut().ok_or("cannot write the conversion buffer")?;
        let mut out_frame = gst_video::VideoFrameRef::from_buffer_ref_writable(out_ref, &out_info)
            .map_err(|_| "cannot map the conversion buffer".to_owned())?;
        converter.frame_ref(&frame, &mut out_frame);
        let data = out_frame.plane_data(0).map_err(|e| e.to_string())?;
        let stride = out_frame.plane_stride()[0] as usize;
        RgbImage::from_format(w, h, PixelFormat::Rgb, data, stride).map_err(|e| e.to_string())
    }
}
