//! The post-processor against transformers' Florence2PostProcessor on 700 recorded
//! generations (well-formed and malformed), see tools/export/florence_export/postprocess_cases.py.

use std::path::Path;

use gstflorence::engine::postprocess::PostProcessor;
use gstflorence::engine::task::Task;
use serde_json::Value;

/// Numbers compared as f64 (the reference has ints, the engine f64 of integral value).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            (x.as_f64().unwrap_or(f64::NAN) - y.as_f64().unwrap_or(f64::NAN)).abs() < 1e-3
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

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
