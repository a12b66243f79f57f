//! The `result` field: the post-processed result as JSON text (C and Python
//! applications parse it with any JSON library), and read back as the
//! engine's typed [`TaskResult`] (florenced, the meta's scaling).

use crate::engine::postprocess::TaskResult;

/// A `result` field that is not a post-processed result.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("result is not a Florence-2 result (text, or bboxes/quad_boxes/polygons with labels): {0}")]
pub struct BadTaskResult(String);

/// `result` as the `result` field carries it.
pub fn encode(result: &TaskResult) -> String {
    // TaskResult holds only strings and numbers: serialising cannot fail
    // (a non-finite coordinate becomes null, which `decode` refuses).
    serde_json::to_string(result).unwrap_or_default()
}

/// A `result` field read back.
pub fn decode(json: &str) -> Result<TaskResult, BadTaskResult> {
    serde_json::from_str::<TaskResult>(json).map_err(|e| BadTaskResult(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_reads_back_as_written() {
        let labels = vec!["a".to_owned(), "b c".to_owned()];
        for r in [
            TaskResult::Text("a cat on a mat".into()),
            TaskResult::Boxes {
                bboxes: vec![[33.6, 159.6, 596.8, 371.8], [0.0, 0.1, 1.0, 1e-9]],
                labels: labels.clone(),
            },
            TaskResult::Quads {
                quad_boxes: vec![[1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.25]],
                labels: labels.clone(),
            },
            TaskResult::Polygons {
                polygons: vec![vec![vec![1.0, 2.0, 3.0, 4.0, 5.5, 6.0]]],
                labels: labels.clone(),
            },
            TaskResult::BoxesOrPolygons {
                bboxes: vec![[1.0, 2.0, 3.0, 4.0]],
                bboxes_labels: vec!["x".into()],
                polygons: vec![],
                polygons_labels: vec![],
            },
            TaskResult::Boxes {
                bboxes: vec![],
                labels: vec![],
            },
        ] {
            assert_eq!(decode(&encode(&r)), Ok(r.clone()), "{r:?}");
        }
    }

    #[test]
    fn other_json_is_refused() {
        for bad in [
            "",
            "null",
            "3",
            r#"{"bboxes":[[1,2,3]],"labels":[]}"#,
            r#"{"bboxes":[],"labels":[],"extra":1}"#,
        ] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }
}
