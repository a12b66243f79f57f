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

#[test]
fn florenced_config_names_the_file_and_empty_reads_none() {
    let dir = scratch::Scratch::new("config-env");
    let file = dir.0.join("florenced.yaml");
    std::fs::write(&file, "queue_depth: 7\nlog_level: debug\n").unwrap();
    let print = |s: Spawn| {
        let out = s.command().arg("--print-config").output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The variable names the file (and is not taken for a configuration key).
    let named = print(Spawn::new().env("FLORENCED_CONFIG", &file.display().to_string()));
    assert!(named.contains("queue_depth: 7"), "{named}");
    assert!(named.contains("log_level: debug"), "{named}");
    // Empty: no file, the defaults.
    let none = print(Spawn::new().env("FLORENCED_CONFIG", ""));
    assert!(!none.contains("queue_depth: 7"), "{none}");
    // --config wins over the variable.
    let other = dir.0.join("other.yaml");
    std::fs::write(&other, "queue_depth: 3\n").unwrap();
    let out = Spawn::new()
        .env("FLORENCED_CONFIG", &file.display().to_string())
        .command()
        .arg("--config")
        .arg(&other)
        .arg("--print-config")
        .output()
        .unwrap();
    let flag = String::from_utf8_lossy(&out.stdout);
    assert!(flag.contains("queue_depth: 3"), "{flag}");
    // A named file that does not exist stops start-up, naming it.
    let missing = dir.0.join("missing.yaml");
    let err = Spawn::new()
        .env("FLORENCED_CONFIG", &missing.display().to_string())
        .failure();
    assert!(err.contains(&missing.display().to_string()), "{err}");
}

#[test]
fn the_execution_provider_is_cpu_by_default_checked_at_load_and_must_be_in_the_library() {
    let print = |s: Spawn| {
        let out = s.command().arg("--print-config").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    assert!(
        print(Spawn::new()).contains("execution_provider: cpu"),
        "the default"
    );
    let text = print(Spawn::new().env("FLORENCED_EXECUTION_PROVIDER", "openvino"));
    assert!(text.contains("execution_provider: openvino"), "{text}");
    // An unknown name stops start-up naming the key and the names it takes.
    let out = Spawn::new()
        .command()
        .args(["--execution-provider", "gpu", "--print-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(
            "florenced: --execution-provider: key `execution_provider`: \
             unknown execution provider \"gpu\""
        ) && err.contains("cuda"),
        "{err}"
    );
    // cuda is not in the pinned CPU-only library: the load fails naming it
    // and what the library offers.
    let err = Spawn::new().set("execution_provider=cuda").failure();
    assert!(
        err.contains("CUDAExecutionProvider") && err.contains("CPUExecutionProvider"),
        "{err}"
    );
    // And cpu serves; /health names it beside the contract's `backend`.
    let d = Spawn::new().set("execution_provider=cpu").ready();
    let h = d.get("/health").json();
    assert_eq!(h["backend"], "onnx-cpu", "{h}");
    assert_eq!(h["execution_provider"], "CPUExecutionProvider", "{h}");
    let r = d.post_json(
        "/v1/caption",
        &json!({"image": b64(&fixture_png("pattern_200x300")), "max_length": 5}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}
