//! The parameters of a region meta: each region of a result leaves the
//! element as a `GstVideoRegionOfInterestMeta` whose params hold one
//! `florence/region` structure (the `FLORENCE_REGION_*` of florence.h).
//!
//! The meta's rectangle is scaled by GStreamer's own transforms; its params
//! are copied as they are. So an outline's points are fractions of the
//! rectangle (x = rect.x + px * rect.w), which stay right wherever a scaler
//! moves the rectangle. Flat arrays of doubles and integers, because
//! PyGObject reads those (`Gst.Structure.get_array`) and no nested one.

use gst::glib::value::ToSendValue;

use crate::engine::region::Shape;

/// The name of the structure in a region meta's params.
pub const REGION_PARAMS_NAME: &str = "florence/region";

/// A field of the `florence/region` structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegionField {
    /// string: the task token, e.g. `<OD>`.
    Task,
    /// string: the label, phrase or OCR text ("" where the task gives none).
    Label,
    /// string: the florencecaption instance's name.
    Element,
    /// string: `box`, `quad` or `polygon`: the list of the result it comes from.
    Shape,
    /// guint: its position in that list of the result (`bboxes`, `quad_boxes`, `polygons`).
    Index,
    /// GstValueArray of doubles, x, y, x, y, ... of every ring, as fractions
    /// of the meta's rectangle (quads and polygons only).
    Points,
    /// GstValueArray of guint: the number of points of each ring in `points`.
    PointCounts,
}

impl RegionField {
    /// Every field, in florence.h's order.
    pub const ALL: [RegionField; 7] = [
        RegionField::Task,
        RegionField::Label,
        RegionField::Element,
        RegionField::Shape,
        RegionField::Index,
        RegionField::Points,
        RegionField::PointCounts,
    ];

    /// The field's name in the structure.
    pub fn name(self) -> &'static str {
        match self {
            RegionField::Task => "task",
            RegionField::Label => "label",
            RegionField::Element => "element",
            RegionField::Shape => "shape",
            RegionField::Index => "index",
            RegionField::Points => "points",
            RegionField::PointCounts => "point-counts",
        }
    }
}

/// One region's parameters, as the element attaches them.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionParams<'a> {
    pub task: &'a str,
    pub label: &'a str,
    pub element: &'a str,
    pub shape: Shape,
    pub index: u32,
    /// The outline's rings, each x, y, x, y, ... as fractions of the rectangle.
    pub rings: Vec<Vec<f64>>,
}

impl RegionParams<'_> {
    /// The `florence/region` structure.
    pub fn encode(&self) -> gst::Structure {
        let mut s = gst::Structure::builder(REGION_PARAMS_NAME)
            .field(RegionField::Task.name(), self.task)
            .field(RegionField::Label.name(), self.label)
            .field(RegionField::Element.name(), self.element)
            .field(RegionField::Shape.name(), self.shape.name())
            .field(RegionField::Index.name(), self.index)
            .build();
        if !self.rings.is_empty() {
            let points = self.rings.iter().flatten().map(|v| v.to_send_value());
            let counts = self
                .rings
                .iter()
                .map(|r| ((r.len() / 2) as u32).to_send_value());
            s.set(RegionField::Points.name(), gst::Array::from_values(points));
            s.set(
                RegionField::PointCounts.name(),
                gst::Array::from_values(counts),
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outlines_are_flat_arrays_and_boxes_have_none() {
        gst::init().unwrap();
        let quad = RegionParams {
            task: "<OCR_WITH_REGION>",
            label: "STOP",
            element: "f",
            shape: Shape::Quad,
            index: 2,
            rings: vec![vec![0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0]],
        }
        .encode();
        assert_eq!(quad.name(), REGION_PARAMS_NAME);
        assert_eq!(quad.get::<&str>("shape"), Ok("quad"));
        assert_eq!(quad.get::<u32>("index"), Ok(2));
        let points = quad.get::<gst::Array>("points").unwrap();
        assert_eq!(points.len(), 8);
        assert_eq!(points[2].get::<f64>(), Ok(1.0));
        let counts = quad.get::<gst::Array>("point-counts").unwrap();
        assert_eq!(counts[0].get::<u32>(), Ok(4));

        let b = RegionParams {
            task: "<OD>",
            label: "cat",
            element: "f",
            shape: Shape::Box,
            index: 0,
            rings: vec![],
        }
        .encode();
        assert!(!b.has_field("points") && !b.has_field("point-counts"));
        assert_eq!(b.get::<&str>("label"), Ok("cat"));
    }
}
