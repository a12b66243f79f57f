//! A task's result drawn on its picture: regions (boxes, OCR quads,
//! segmentation polygons) outlined with their labels, text results (captions,
//! OCR, answers) as a band along the bottom. No GStreamer types: `florenced run
//! --draw` writes these as PNG files.
//!
//! [`overlay`] draws on a transparent canvas of the picture's size (premultiplied
//! RGBA, what a composition overlay takes); [`annotate`] lays that canvas over
//! the picture itself.
//!
//! - [`regions`]: the outlines and labels a result holds;
//! - [`style`]: colours, line widths and text sizes for a picture's size;
//! - [`label`]: a line of text on a filled background.

pub mod label;
pub mod regions;
pub mod style;

use tiny_skia::{Paint, PathBuilder, Pixmap, PixmapPaint, Stroke, Transform};

use crate::engine::postprocess::TaskResult;
use crate::engine::preprocess::RgbImage;
use label::Label;
use regions::Region;
use style::Style;

/// `result` drawn on a transparent `width` x `height` canvas, or `None` for a
/// zero-sized picture.
pub fn overlay(width: u32, height: u32, result: &TaskResult) -> Option<Pixmap> {
    let mut canvas = Pixmap::new(width, height)?;
    let style = Style::for_size(width, height);
    let regions = regions::of(result);
    for (i, region) in regions.iter().enumerate() {
        outline(&mut canvas, region, style.colour(i, &region.label), &style);
    }
    // Labels after every outline, so no outline crosses a label.
    for (i, region) in regions.iter().enumerate() {
        if let Some(label) = Label::new(&region.label, &style) {
            let (x, y) = region.label_anchor();
            label.draw_at(&mut canvas, x, y, style.colour(i, &region.label));
        }
    }
    if let TaskResult::Text(text) = result {
        label::band(&mut canvas, text, &style);
    }
    Some(canvas)
}

/// `image` (packed RGB) with `result` drawn on it, as an image to save.
pub fn annotate(image: &RgbImage, result: &TaskResult) -> image::RgbImage {
    let (width, height) = (image.width, image.height);
    let Some(drawing) = overlay(width, height, result) else {
        return image::RgbImage::new(width, height);
    };
    let mut picture = Pixmap::new(width, height).expect("the overlay's size");
    for (dst, src) in picture
        .data_mut()
        .chunks_exact_mut(4)
        .zip(image.data.chunks_exact(3))
    {
        dst.copy_from_slice(&[src[0], src[1], src[2], 255]);
    }
    picture.draw_pixmap(
        0,
        0,
        drawing.as_ref(),
        &PixmapPaint::default(),
        Transform::identity(),
        None,
    );
    // Opaque everywhere, so premultiplied and straight colours are the same.
    image::RgbImage::from_fn(width, height, |x, y| {
        let p = picture.pixel(x, y).expect("inside the picture");
        image::Rgb([p.red(), p.green(), p.blue()])
    })
}

fn outline(canvas: &mut Pixmap, region: &Region, colour: tiny_skia::Color, style: &Style) {
    let mut path = PathBuilder::new();
    let mut points = region.points.iter();
    let Some(&(x, y)) = points.next() else {
        return;
    };
    path.move_to(x, y);
    for &(x, y) in points {
        path.line_to(x, y);
    }
    path.close();
    let Some(path) = path.finish() else {
        return; // a single point or a degenerate outline: nothing to stroke
    };
    let mut paint = Paint::default();
    paint.set_color(colour);
    let stroke = Stroke {
        width: style.line_width,
        ..Stroke::default()
    };
    canvas.stroke_path(&path, &paint, &stroke, Transform::identity(), None);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alpha(canvas: &Pixmap, x: u32, y: u32) -> u8 {
        canvas.pixel(x, y).unwrap().alpha()
    }

    #[test]
    fn a_box_is_outlined_and_labelled_and_nothing_else_is_drawn() {
        let result = TaskResult::Boxes {
            bboxes: vec![[20.0, 40.0, 120.0, 90.0]],
            labels: vec!["cat".into()],
        };
        let canvas = overlay(200, 100, &result).unwrap();
        let colour = canvas.pixel(20, 65).unwrap();
        for (x, y) in [(20, 65), (120, 65), (70, 90), (70, 40)] {
            assert_eq!(canvas.pixel(x, y).unwrap(), colour, "outline at ({x}, {y})");
        }
        assert_eq!(colour.alpha(), 255);
        for (x, y) in [(70, 65), (5, 95), (190, 5), (125, 65)] {
            assert_eq!(alpha(&canvas, x, y), 0, "nothing at ({x}, {y})");
        }
        // The tag sits on the box's top edge, above it where there is room.
        assert_eq!(alpha(&canvas, 21, 38), 255);
        assert_eq!(alpha(&canvas, 21, 15), 0, "the tag is one line high");
    }

    #[test]
    fn polygons_and_quads_are_closed_outlines() {
        let result = TaskResult::Quads {
            quad_boxes: vec![[10.0, 10.0, 60.0, 10.0, 60.0, 30.0, 10.0, 30.0]],
            labels: vec![String::new()],
        };
        let canvas = overlay(100, 50, &result).unwrap();
        // The closing edge (last corner back to the first) is drawn too.
        assert_eq!(alpha(&canvas, 10, 20), 255);
        assert_eq!(alpha(&canvas, 35, 20), 0);
        let result = TaskResult::Polygons {
            polygons: vec![vec![vec![10.0, 40.0, 50.0, 40.0, 30.0, 10.0]]],
            labels: vec![String::new()],
        };
        let canvas = overlay(100, 50, &result).unwrap();
        assert_eq!(alpha(&canvas, 30, 40), 255, "base edge");
        assert_eq!(alpha(&canvas, 30, 30), 0, "inside");
    }

    #[test]
    fn text_results_get_a_band_along_the_bottom() {
        let canvas = overlay(300, 200, &TaskResult::Text("a cat on a mat".into())).unwrap();
        assert!(alpha(&canvas, 1, 199) > 100, "the band");
        assert_eq!(alpha(&canvas, 1, 1), 0, "the picture above it");
        let empty = overlay(300, 200, &TaskResult::Text(String::new())).unwrap();
        assert!(empty.pixels().iter().all(|p| p.alpha() == 0));
        assert!(overlay(0, 10, &TaskResult::Text("x".into())).is_none());
    }

    #[test]
    fn regions_off_the_picture_are_clipped_not_a_panic() {
        let result = TaskResult::Boxes {
            bboxes: vec![[-50.0, -50.0, 5000.0, 5000.0], [f64::NAN, 0.0, 1.0, 1.0]],
            labels: vec!["huge".into(), "nan".into()],
        };
        let canvas = overlay(64, 48, &result).unwrap();
        assert_eq!(canvas.width(), 64);
    }
}
