//! The outlines a task result holds, in picture pixels, with their labels,
//! from the engine's walk through its regions ([`TaskResult::regions`]):
//! boxes as rectangles, OCR quads as their four corners, each ring of a
//! segmentation polygon group as its own outline.

use crate::engine::postprocess::TaskResult;

/// One closed outline and the label it is drawn with (empty: none).
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    pub points: Vec<(f32, f32)>,
    pub label: String,
}

impl Region {
    /// Where the label goes: the outline's top-left corner (its smallest x
    /// and y), so labels of boxes sit on their top edge.
    pub fn label_anchor(&self) -> (f32, f32) {
        let x = self
            .points
            .iter()
            .map(|p| p.0)
            .fold(f32::INFINITY, f32::min);
        let y = self
            .points
            .iter()
            .map(|p| p.1)
            .fold(f32::INFINITY, f32::min);
        (x, y)
    }
}

/// Every outline of `result`, in the result's order; none for a text result.
pub fn of(result: &TaskResult) -> Vec<Region> {
    let mut outlines = Vec::new();
    for region in result.regions() {
        let label = region.label.to_owned();
        if region.rings.is_empty() {
            let [x1, y1, x2, y2] = region.bounds.map(|v| v as f32);
            outlines.push(Region {
                points: vec![(x1, y1), (x2, y1), (x2, y2), (x1, y2)],
                label,
            });
            continue;
        }
        for ring in region.rings {
            outlines.push(Region {
                points: ring
                    .chunks_exact(2)
                    .map(|p| (p[0] as f32, p[1] as f32))
                    .collect(),
                label: label.clone(),
            });
        }
    }
    outlines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_result_gives_its_outlines() {
        let b = of(&TaskResult::Boxes {
            bboxes: vec![[10.0, 20.0, 30.0, 40.0]],
            labels: vec!["car".into()],
        });
        assert_eq!(
            b,
            vec![Region {
                points: vec![(10.0, 20.0), (30.0, 20.0), (30.0, 40.0), (10.0, 40.0)],
                label: "car".into()
            }]
        );
        assert_eq!(b[0].label_anchor(), (10.0, 20.0));
        let q = of(&TaskResult::Quads {
            quad_boxes: vec![[1.0, 2.0, 9.0, 2.0, 9.0, 5.0, 1.0, 5.0]],
            labels: vec!["text".into()],
        });
        assert_eq!(q[0].points.len(), 4);
        let p = of(&TaskResult::Polygons {
            polygons: vec![vec![
                vec![0.0, 0.0, 4.0, 0.0, 2.0, 3.0],
                vec![5.0, 5.0, 6.0, 6.0, 5.0, 7.0],
            ]],
            labels: vec!["two parts".into()],
        });
        assert_eq!(p.len(), 2, "one region per part, both labelled");
        assert!(p.iter().all(|r| r.label == "two parts"));
        assert!(of(&TaskResult::Text("a cat".into())).is_empty());
        // Region proposals have boxes and no labels.
        let r = of(&TaskResult::Boxes {
            bboxes: vec![[0.0, 0.0, 1.0, 1.0]],
            labels: vec![],
        });
        assert_eq!(r[0].label, "");
    }
}
