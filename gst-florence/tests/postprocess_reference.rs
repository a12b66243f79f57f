//! The post-processor against transformers' Florence2PostProcessor on 700 recorded
//! generations (well-formed and malformed), see tools/export/florence_export/postprocess_cases.py.

use std::path::Path;

use gstflorence::engine::postprocess::PostProcessor;
use gstflorence::engine::task::Task;
use serde_json::Value;

mod common;
use common::same;

#[test]
fn matches_the_reference_post_processor() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/postprocess_cases.json");
    let data: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let pp = PostProcessor::from_config(&data["post_processor_config"]);
    let cases = data["cases"].as_array().unwrap();
    assert!(cases.len() >= 500);
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let task: Task = case["task"].as_str().unwrap().parse().unwrap();
        let text = case["text"].as_str().unwrap();
        let size = case["image_size"].as_array().unwrap();
        let (w, h) = (
            size[0].as_u64().unwrap() as u32,
            size[1].as_u64().unwrap() as u32,
        );
        let ours = serde_json::to_value(pp.parse(task.parse_kind(), text, w, h)).unwrap();
        if !same(&ours, &case["result"]) {
            failures.push(format!(
                "case {i} {task} {w}x{h} {text:?}\n  reference {}\n  engine    {ours}",
                case["result"]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        cases.len(),
        failures
            .iter()
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The recorded cases were made with the configuration the engine builds in
/// for model directories without `post_processor_config.json` (one copy:
/// gst-florence/data/, which tools/export/ reads too).
#[test]
fn the_built_in_configuration_is_the_one_the_references_used() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/postprocess_cases.json");
    let data: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let built_in: Value =
        serde_json::from_str(gstflorence::engine::postprocess::BUILT_IN_CONFIG).unwrap();
    assert_eq!(data["post_processor_config"], built_in);
}
