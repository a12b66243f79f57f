//! The daemon's configuration layers as a deployment sets them: environment
//! variables that a tool rendered, and errors that say which layer is wrong.

mod common;

use common::*;
use serde_json::json;

#[test]
fn a_null_vqa_template_from_the_environment_means_the_models_own() {
    let s = Spawn::new().env("FLORENCED_VQA_PROMPT_TEMPLATE", "null");
    let out = s.command().arg("--print-config").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("vqa_prompt_template: null"), "{text}");
    // And it serves VQA with the model directory's template.
    let d = s.ready();
    let r = d.post_json(
        "/v1/vqa",
        &json!({"image": b64(&fixture_png("pattern_200x300")), "question": "What colour?", "max_length": 5}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn start_up_errors_name_the_layer_and_the_key() {
    let cases: [(Spawn, &str); 4] = [
        (
            Spawn::new().env("FLORENCED_RATE_LIMIT__BURST", "5"),
            "florenced: environment variable FLORENCED_RATE_LIMIT__BURST: key `rate_limit`: \
             missing field `requests_per_minute`",
        ),
        (
            Spawn::new()
                .set("rate_limit.burst=0")
                .set("rate_limit.requests_per_minute=60"),
            "florenced: --set rate_limit.burst=0: key `rate_limit.burst`: must be > 0",
        ),
        (
            Spawn::new().env("FLORENCED_MIN_LENGTH", "150"),
            "florenced: environment variable FLORENCED_MIN_LENGTH: key `min_length`: \
             150 must not exceed max_length (100, from defaults)",
        ),
        (
            Spawn::new().set("config_file_typo=1"),
            "florenced: --set config_file_typo=1: key `config_file_typo`: unknown field",
        ),
    ];
    for (spawn, want) in cases {
        let err = spawn.failure();
        assert!(err.starts_with(want), "want {want:?}\ngot  {err:?}");
        assert!(!err.contains("(defaults)"), "{err}");
    }
}
