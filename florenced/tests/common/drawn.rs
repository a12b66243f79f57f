//! Checks of a picture with a result drawn on it (`run --draw`, the page):
//! the box's outline (left, right and bottom edges) where the result puts it, the picture untouched off it.

use image::RgbImage;
use serde_json::Value;

/// The first of a result's `bboxes`, rounded to pixels.
pub fn first_box(bboxes: &Value) -> [u32; 4] {
    let first = bboxes.as_array().and_then(|b| b.first()).expect("a box");
    let v: Vec<u32> = first
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap().round() as u32)
        .collect();
    [v[0], v[1], v[2], v[3]]
}

/// On `drawn`, the outline of `[x1, y1, x2, y2]` in one colour that is not
/// the picture's, and `input`'s own pixels inside the box and beyond it
/// (away from the label at the top-left corner).
pub fn assert_outlined(input: &RgbImage, drawn: &RgbImage, [x1, y1, x2, y2]: [u32; 4]) {
    assert_eq!(
        drawn.dimensions(),
        input.dimensions(),
        "the picture at its own size"
    );
    let (mid_x, mid_y) = ((x1 + x2) / 2, (y1 + y2) / 2);
    let edge = *drawn.get_pixel(x1, mid_y);
    for (x, y) in [(x1, mid_y), (x2, mid_y), (mid_x, y2)] {
        assert_ne!(
            *drawn.get_pixel(x, y),
            *input.get_pixel(x, y),
            "outline at ({x}, {y})"
        );
        assert_eq!(*drawn.get_pixel(x, y), edge, "outline at ({x}, {y})");
    }
    for (x, y) in [
        (mid_x, mid_y),
        (x2 + 20, y2 + 20),
        (input.width() - 1, input.height() - 1),
    ] {
        assert_eq!(
            *drawn.get_pixel(x, y),
            *input.get_pixel(x, y),
            "off the box ({x}, {y})"
        );
    }
}
