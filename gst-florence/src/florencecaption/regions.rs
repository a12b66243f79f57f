//! A result's regions as GStreamer's standard region metas: one
//! `GstVideoRegionOfInterestMeta` per box, quad box or polygon group, so
//! applications and elements that read ROI metas get Florence-2's detections
//! without this project's header. Their parameters are the protocol's
//! [`RegionParams`]. The same regions come back as object detections, which
//! `result` adds to the buffer's `GstAnalyticsRelationMeta` on GStreamer
//! 1.24 and newer ([`crate::analytics`]), for `objectdetectionoverlay` and
//! other analytics consumers.

use gst_video::VideoRegionOfInterestMeta;

use crate::analytics::Detection;

use crate::engine::postprocess::TaskResult;
use crate::engine::region::Region;
use crate::protocol::{REGION_PARAMS_NAME, RegionParams};

/// A region's rectangle (x, y, w, h) in the buffer's pixels, and its outline
/// as fractions of that rectangle.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Placed {
    pub(super) rect: (u32, u32, u32, u32),
    pub(super) rings: Vec<Vec<f64>>,
}

/// Places `region`, whose coordinates are pixels of an image of `analysed`
/// size, on a frame of `frame` size (the same frame in every-frame mode; in
/// live mode the newest caps, which may have changed since).
pub(super) fn place(region: &Region, analysed: [u32; 2], frame: [u32; 2]) -> Placed {
    let scale = |axis: usize| f64::from(frame[axis]) / f64::from(analysed[axis].max(1));
    let (sx, sy) = (scale(0), scale(1));
    let on_frame = |v: f64, s: f64, axis: usize| (v * s).clamp(0.0, f64::from(frame[axis]));
    let [x1, y1, x2, y2] = region.bounds;
    let (x1, x2) = (on_frame(x1, sx, 0).round(), on_frame(x2, sx, 0).round());
    let (y1, y2) = (on_frame(y1, sy, 1).round(), on_frame(y2, sy, 1).round());
    let (w, h) = (x2 - x1, y2 - y1);
    // A rectangle of no width has its points on its left edge (fraction 0).
    let fraction = |v: f64, origin: f64, size: f64| {
        if size > 0.0 { (v - origin) / size } else { 0.0 }
    };
    let rings = region
        .rings
        .iter()
        .map(|ring| {
            ring.chunks_exact(2)
                .flat_map(|p| [fraction(p[0] * sx, x1, w), fraction(p[1] * sy, y1, h)])
                .collect()
        })
        .collect();
    Placed {
        rect: (x1 as u32, y1 as u32, w as u32, h as u32),
        rings,
    }
}

/// Attaches every region of `result` (from an image of `analysed` size) to
/// `buf` (a frame of `frame` size) as a region meta; returns them as object
/// detections, for the analytics meta.
pub(super) fn attach_regions(
    buf: &mut gst::BufferRef,
    element: &str,
    task: &str,
    result: &TaskResult,
    analysed: [u32; 2],
    frame: [u32; 2],
) -> Vec<Detection> {
    // Ids are unique on the buffer (several instances, or an upstream
    // detector, may add regions) and count on from those already there (0 on
    // a buffer without), so bindings can fetch each with
    // gst_buffer_get_video_region_of_interest_meta_id.
    let first_id = buf
        .iter_meta::<VideoRegionOfInterestMeta>()
        .map(|m| i64::from(m.id()) + 1)
        .max()
        .unwrap_or(0)
        .max(0) as usize;
    let mut detections = Vec::new();
    for (n, region) in result.regions().iter().enumerate() {
        let placed = place(region, analysed, frame);
        let roi_type = if region.label.is_empty() {
            task
        } else {
            region.label
        };
        let (x, y, w, h) = placed.rect;
        detections.push(Detection {
            label: roi_type.to_owned(),
            rect: (x as i32, y as i32, w as i32, h as i32),
            // Florence-2 gives no confidence: its regions are all it found.
            confidence: 1.0,
        });
        let mut meta = VideoRegionOfInterestMeta::add(buf, roi_type, placed.rect);
        meta.set_id(i32::try_from(first_id + n).unwrap_or(i32::MAX));
        meta.add_param(
            RegionParams {
                task,
                label: region.label,
                element,
                shape: region.shape,
                index: region.index as u32,
                rings: placed.rings,
            }
            .encode(),
        );
    }
    detections
}

/// Gives the region metas a scaler made on `dest` the params of their
/// source on `src` (matched by id, unique on a buffer).
///
/// GStreamer's scale transform of `GstVideoRegionOfInterestMeta` scales the
/// rectangle but drops the params (1.22 to today's main); the outline in
/// them, fractions of the rectangle, holds at any scale. Called from the
/// `FlorenceCaptionMeta`'s scale transform, which GStreamer runs after the
/// region metas' (a buffer's metas are transformed newest first, and the
/// regions are added after the result meta).
pub(super) fn restore_params(dest: &mut gst::BufferRef, src: &gst::BufferRef) {
    for mut roi in dest.iter_meta_mut::<VideoRegionOfInterestMeta>() {
        if roi.param(REGION_PARAMS_NAME).is_some() {
            continue;
        }
        let id = roi.id();
        let params = src
            .iter_meta::<VideoRegionOfInterestMeta>()
            .filter(|m| m.id() == id)
            .find_map(|m| m.param(REGION_PARAMS_NAME).map(|p| p.to_owned()));
        if let Some(params) = params {
            roi.add_param(params);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::region::Shape;

    #[test]
    fn regions_follow_the_frame_size_and_outlines_their_rectangle() {
        let ring = [10.0, 20.0, 30.0, 20.0, 30.0, 60.0];
        let region = Region {
            shape: Shape::Polygon,
            index: 0,
            label: "x",
            bounds: [10.0, 20.0, 30.0, 60.0],
            rings: vec![&ring],
        };
        let same = place(&region, [100, 100], [100, 100]);
        assert_eq!(same.rect, (10, 20, 20, 40));
        assert_eq!(same.rings, vec![vec![0.0, 0.0, 1.0, 0.0, 1.0, 1.0]]);
        let doubled = place(&region, [100, 100], [200, 50]);
        assert_eq!(doubled.rect, (20, 10, 40, 20));
        assert_eq!(doubled.rings, same.rings);
        // Out of the frame: clamped to its edge.
        let out = Region {
            bounds: [90.0, 90.0, 130.0, 95.0],
            rings: vec![],
            ..region
        };
        assert_eq!(place(&out, [100, 100], [100, 100]).rect, (90, 90, 10, 5));
    }
}
