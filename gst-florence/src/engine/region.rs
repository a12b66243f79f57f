//! A task result's regions, one by one: what the element attaches as region
//! metas and what anything that draws a result walks through.
//!
//! Each box, quad box or polygon group of a [`TaskResult`] is one [`Region`]
//! with its label (an OD class, a phrase, an OCR line; empty where Florence-2
//! gives none, as region proposals), its bounding box and, for quads and
//! polygons, its outline. Coordinates are the result's own: pixels of the
//! analysed image.

use super::postprocess::TaskResult;

/// The shape a region had in the result, and where it sits there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `bboxes[index]`.
    Box,
    /// `quad_boxes[index]` (OCR with regions).
    Quad,
    /// `polygons[index]` (segmentation, open-vocabulary detection).
    Polygon,
}

impl Shape {
    /// The shape's name in the region metas.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Box => "box",
            Shape::Quad => "quad",
            Shape::Polygon => "polygon",
        }
    }
}

/// One region of a result.
#[derive(Debug, Clone, PartialEq)]
pub struct Region<'a> {
    pub shape: Shape,
    /// Its position in the result's list of that shape.
    pub index: usize,
    pub label: &'a str,
    /// x1, y1, x2, y2 (x1 <= x2, y1 <= y2): the box, or the outline's bounds.
    pub bounds: [f64; 4],
    /// The outline's rings, each x, y, x, y, ...: one for a quad, one or more
    /// for a polygon group; none for a box.
    pub rings: Vec<&'a [f64]>,
}

impl TaskResult {
    /// Every region of the result, boxes first (empty for text results).
    pub fn regions(&self) -> Vec<Region<'_>> {
        match self {
            TaskResult::Text(_) => Vec::new(),
            TaskResult::Boxes { bboxes, labels } => boxes(bboxes, labels).collect(),
            TaskResult::Quads { quad_boxes, labels } => quad_boxes
                .iter()
                .enumerate()
                .filter_map(|(i, q)| outline(Shape::Quad, i, label(labels, i), vec![q.as_slice()]))
                .collect(),
            TaskResult::Polygons {
                polygons: p,
                labels,
            } => polygons(p, labels).collect(),
            TaskResult::BoxesOrPolygons {
                bboxes,
                bboxes_labels,
                polygons: p,
                polygons_labels,
            } => boxes(bboxes, bboxes_labels)
                .chain(polygons(p, polygons_labels))
                .collect(),
        }
    }
}

/// The `i`th label (empty when the result has fewer labels than shapes).
fn label(labels: &[String], i: usize) -> &str {
    labels.get(i).map_or("", String::as_str)
}

fn boxes<'a>(bboxes: &'a [[f64; 4]], labels: &'a [String]) -> impl Iterator<Item = Region<'a>> {
    bboxes.iter().enumerate().map(move |(i, b)| Region {
        shape: Shape::Box,
        index: i,
        label: label(labels, i),
        bounds: [
            b[0].min(b[2]),
            b[1].min(b[3]),
            b[0].max(b[2]),
            b[1].max(b[3]),
        ],
        rings: Vec::new(),
    })
}

fn polygons<'a>(
    groups: &'a [Vec<Vec<f64>>],
    labels: &'a [String],
) -> impl Iterator<Item = Region<'a>> {
    groups.iter().enumerate().filter_map(move |(i, rings)| {
        outline(
            Shape::Polygon,
            i,
            label(labels, i),
            rings.iter().map(Vec::as_slice).collect(),
        )
    })
}

/// A quad or polygon group as a region (none when it has no point).
fn outline<'a>(
    shape: Shape,
    index: usize,
    label: &'a str,
    rings: Vec<&'a [f64]>,
) -> Option<Region<'a>> {
    Some(Region {
        shape,
        index,
        label,
        bounds: outline_bounds(&rings)?,
        rings,
    })
}

/// The bounds of every point of `rings` (none when they have no point).
fn outline_bounds(rings: &[&[f64]]) -> Option<[f64; 4]> {
    let mut points = rings.iter().flat_map(|r| r.chunks_exact(2));
    let first = points.next()?;
    Some(
        points.fold([first[0], first[1], first[0], first[1]], |b, p| {
            [
                b[0].min(p[0]),
                b[1].min(p[1]),
                b[2].max(p[0]),
                b[3].max(p[1]),
            ]
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_gives_its_regions_with_bounds() {
        let r = TaskResult::BoxesOrPolygons {
            bboxes: vec![[10.0, 20.0, 5.0, 40.0]],
            bboxes_labels: vec!["cat".into()],
            polygons: vec![
                vec![vec![1.0, 9.0, 7.0, 2.0, 3.0, 4.0], vec![0.5, 5.0]],
                vec![],
            ],
            polygons_labels: vec!["dog".into(), "empty".into()],
        };
        let regions = r.regions();
        assert_eq!(
            regions.len(),
            2,
            "a polygon group without points has no region"
        );
        assert_eq!(regions[0].shape, Shape::Box);
        assert_eq!(regions[0].bounds, [5.0, 20.0, 10.0, 40.0]);
        assert_eq!(regions[1].shape, Shape::Polygon);
        assert_eq!((regions[1].index, regions[1].label), (0, "dog"));
        assert_eq!(regions[1].bounds, [0.5, 2.0, 7.0, 9.0]);
        assert_eq!(regions[1].rings.len(), 2);

        let q = TaskResult::Quads {
            quad_boxes: vec![[1.0, 2.0, 9.0, 2.0, 9.0, 6.0, 1.0, 6.0]],
            labels: vec![],
        };
        let quads = q.regions();
        assert_eq!((quads[0].shape, quads[0].label), (Shape::Quad, ""));
        assert_eq!(quads[0].bounds, [1.0, 2.0, 9.0, 6.0]);
        assert!(TaskResult::Text("a cat".into()).regions().is_empty());
    }
}
