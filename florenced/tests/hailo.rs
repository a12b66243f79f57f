//! The daemon with the Hailo backend over the bridge stand-in
//! (hailo-standin/, loaded through the engine's loader as libhailort,
//! FLORENCE_HAILORT_LIBRARY, and as the bridge, FLORENCE_HAILO_BRIDGE_DIR): captions from the
//! split, and each injected device fault's outcome end to end (status, body,
//! Retry-After, /health, recovery once the fault clears).

use std::path::PathBuf;

use gstflorence::engine::hailo::{BRIDGE_DIR_ENV, HAILORT_LIBRARY_ENV};
use gstflorence::engine::task::Task;

mod common;
use common::{Daemon, Spawn, b64, fixture_png, root};

/// One faults file per test (the daemons run in parallel).
struct Faults(PathBuf);

impl Faults {
    fn new(name: &str, text: &str) -> Faults {
        let f = Faults(
            PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("hailo-faults-{name}-{}", std::process::id())),
        );
        f.set(text);
        f
    }

    /// Rewritten atomically: the stand-in reads it at every call.
    fn set(&self, text: &str) {
        let tmp = self.0.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.0).unwrap();
    }
}

impl Drop for Faults {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn standin() -> PathBuf {
    common::built("libflorence_hailo_standin.so")
}

/// A bridge folder with the stand-in as the HailoRT 5 bridge.
fn bridges() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        florence_test_support::hailo_standin_bridge_dir(
            "florenced",
            &[gstflorence::engine::hailo::bridge_file_name(5)],
        )
    })
    .clone()
}

fn spawn(backend: &str, faults: &Faults) -> Spawn {
    Spawn::new()
        .set(&format!("backend={backend}"))
        .env(HAILORT_LIBRARY_ENV, &standin().display().to_string())
        .env(BRIDGE_DIR_ENV, &bridges().display().to_string())
        .env(
            "FLORENCE_HAILO_STANDIN_FAULTS",
            &faults.0.display().to_string(),
        )
}

fn references() -> serde_json::Value {
    let text = std::fs::read_to_string(root().join("tests/fixtures/references.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The first fixture image and the caption its recorded Hailo-split tokens decode to.
fn case() -> (Vec<u8>, String) {
    let refs = references();
    let img = &refs["images"][0];
    let name = img["name"].as_str().unwrap();
    let engine = common::tiny_engine();
    let mut ids = vec![engine.files().model.text_config.decoder_start_token_id];
    ids.extend(
        img["hailo_caption_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32),
    );
    let png = fixture_png(name);
    let decoded = image::load_from_memory(&png).unwrap();
    let raw = engine.decode_ids(&ids).unwrap();
    let text = engine
        .post_process(Task::Caption, &raw, decoded.width(), decoded.height())
        .text();
    (png, text)
}

fn caption(d: &Daemon, png: &[u8]) -> common::Response {
    d.post_json("/v1/caption", &serde_json::json!({"image": b64(png)}))
}

#[test]
fn captions_run_on_the_hailo_device_and_match_the_split() {
    let faults = Faults::new("ok", "");
    let (png, want) = case();
    let d = spawn("hailo", &faults).ready();
    let h = d.get("/health").json();
    assert_eq!(h["backend"], "hailo", "{h}");
    assert_eq!(h["hailo_device"], "connected", "{h}");
    d.wait_log("captions run on the Hailo device", 1);
    let r = caption(&d, &png);
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["caption"], want.as_str(), "{j}");
    assert_eq!(j["backend"], "hailo", "{j}");
}

#[test]
fn a_busy_device_answers_503_with_retry_after_until_it_is_free() {
    // hailo-ollama holds the chip from before the start: the service still starts.
    let faults = Faults::new("busy", "open=74\n");
    let (png, want) = case();
    let d = spawn("hailo", &faults).ready();
    let r = caption(&d, &png);
    assert_eq!(r.error_code(503), "device_error");
    assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
    // /health keeps answering while the device is busy.
    assert_eq!(d.get("/health").status, 200);
    faults.set("");
    let r = caption(&d, &png);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["caption"], want.as_str());
}

#[test]
fn a_device_lost_mid_run_is_reported_and_reopened_by_the_next_request() {
    let faults = Faults::new("lost", "");
    let (png, want) = case();
    let d = spawn("hailo", &faults).ready();
    assert_eq!(caption(&d, &png).status, 200);
    // Gone after the text encoder and two decoder steps of the next caption.
    faults.set("run=96@3\n");
    let r = caption(&d, &png);
    assert_eq!(r.error_code(503), "device_error");
    assert!(r.header("retry-after").is_some());
    let h = d.get("/health");
    assert_eq!(h.status, 503, "{}", h.text());
    assert_eq!(h.json()["hailo_device"], "disconnected");
    faults.set("");
    let r = caption(&d, &png);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["caption"], want.as_str());
    let h = d.get("/health");
    assert_eq!(h.status, 200, "{}", h.text());
    assert_eq!(h.json()["hailo_device"], "connected");
}

#[test]
fn a_run_timeout_is_a_device_error_and_the_next_request_recovers() {
    let faults = Faults::new("timeout", "");
    let (png, want) = case();
    let d = spawn("hailo", &faults).ready();
    faults.set("run=4\n");
    let r = caption(&d, &png);
    assert_eq!(r.error_code(503), "device_error");
    faults.set("");
    let r = caption(&d, &png);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["caption"], want.as_str());
}

#[test]
fn start_up_errors_name_the_cause() {
    let faults = Faults::new("chip", "chip=hailo8\n");
    let err = spawn("hailo", &faults).failure();
    assert!(
        err.contains("florence2_transformer_encoder.hef") && err.contains("hailo10h"),
        "{err}"
    );
    faults.set("open=64\n");
    let err = spawn("hailo", &faults).failure();
    assert!(
        err.contains("Hailo driver") && err.contains("/dev/hailo0"),
        "{err}"
    );
    // Without HailoRT on the machine, the machine is the reason.
    let err = Spawn::new()
        .set("backend=hailo")
        .env(HAILORT_LIBRARY_ENV, NO_HAILORT)
        .failure();
    assert!(err.contains("no HailoRT library on this machine"), "{err}");
    // HailoRT 4 with only the HailoRT 5 bridge installed.
    faults.set("hailort=4.23.0\n");
    let err = spawn("hailo", &faults).failure();
    assert!(
        err.contains("HailoRT 4.23.0 found") && err.contains("no bridge for HailoRT 4"),
        "{err}"
    );
}

/// /health's `backend_reason` ("" when absent).
fn reason(health: &serde_json::Value) -> &str {
    health["backend_reason"].as_str().unwrap_or_default()
}

#[test]
fn auto_takes_the_device_when_it_answers_and_onnx_runtime_otherwise() {
    let faults = Faults::new("auto", "");
    let d = spawn("auto", &faults).ready();
    let h = d.get("/health").json();
    assert_eq!(h["backend"], "hailo", "{h}");
    assert!(reason(&h).starts_with("backend=auto chose Hailo"), "{h}");
    drop(d);
    faults.set("open=74\n");
    let d = spawn("auto", &faults).ready();
    let h = d.get("/health").json();
    assert_eq!(h["backend"], "onnx-cpu", "{h}");
    assert_eq!(h["hailo_device"], "not_used", "{h}");
    // /health says why: the device was held by another process.
    let why = reason(&h);
    assert!(
        why.starts_with("backend=auto chose ONNX Runtime") && why.contains("74"),
        "{h}"
    );
    // Without HailoRT, the reason is the machine's, never the build's.
    let d = Spawn::new()
        .set("backend=auto")
        .env(HAILORT_LIBRARY_ENV, NO_HAILORT)
        .ready();
    let h = d.get("/health").json();
    assert_eq!(h["backend"], "onnx-cpu", "{h}");
    assert!(
        reason(&h)
            .starts_with("backend=auto chose ONNX Runtime: no HailoRT library on this machine"),
        "{h}"
    );
    assert!(!reason(&h).contains("build"), "{h}");
    // `florenced run` says the same.
    let out = common::process::succeed(
        std::process::Command::new(env!("CARGO_BIN_EXE_florenced"))
            .args([
                "run",
                "--verbose",
                "--threads",
                "1",
                "--max-new-tokens",
                "4",
            ])
            .arg("--model-dir")
            .arg(common::model_dir())
            .arg(root().join("tests/fixtures/images/scene_640x480.png"))
            .env(HAILORT_LIBRARY_ENV, NO_HAILORT),
    );
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["backend_reason"], reason(&h), "{line}");
}

/// A libhailort that is not there: the machine without HailoRT.
const NO_HAILORT: &str = "/nonexistent/libhailort.so";

/// The stand-in's record of what the engine asked the device for.
struct Trace(PathBuf);

impl Trace {
    fn new(name: &str) -> Trace {
        let t = Trace(
            PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("hailo-trace-{name}-{}", std::process::id())),
        );
        let _ = std::fs::remove_file(&t.0);
        t
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.0)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn the_configured_group_priority_and_timeout_reach_the_device() {
    let faults = Faults::new("settings", "");
    let trace = Trace::new("settings");
    let (png, want) = case();
    let d = spawn("hailo", &faults)
        .env(
            "FLORENCE_HAILO_STANDIN_TRACE",
            &trace.0.display().to_string(),
        )
        .set("hailo.group_id=cameras")
        .set("hailo.scheduler_priority=24")
        .set("hailo.run_timeout_ms=4000")
        .ready();
    let r = caption(&d, &png);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["caption"], want.as_str());
    let lines = trace.lines();
    assert!(lines.iter().any(|l| l == "open group=cameras"), "{lines:?}");
    for hef in [
        "florence2_transformer_encoder.hef",
        "florence2_transformer_decoder.hef",
    ] {
        let want = format!("load {hef} priority=24");
        assert!(lines.contains(&want), "{want} not in {lines:?}");
    }
    // Every run is bounded by the configured timeout (the request's deadline,
    // 60 s by default, is longer).
    let runs: Vec<&String> = lines.iter().filter(|l| l.starts_with("run ")).collect();
    assert!(!runs.is_empty(), "{lines:?}");
    assert!(runs.iter().all(|l| *l == "run timeout_ms=4000"), "{runs:?}");
}

#[test]
fn the_device_is_shared_only_within_its_group() {
    let (png, want) = case();
    // Another florenced in group SHARED holds the chip: ours (default group) shares it.
    let faults = Faults::new("group", "held_by=SHARED\n");
    let d = spawn("hailo", &faults).ready();
    let r = caption(&d, &png);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["caption"], want.as_str());
    drop(d);
    // In another group, the chip is busy for us.
    let d = spawn("hailo", &faults).set("hailo.group_id=UNIQUE").ready();
    let r = caption(&d, &png);
    assert_eq!(r.error_code(503), "device_error");
    assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
    drop(d);
    // hailo-ollama (HailoRT's default group UNIQUE) shares with nobody.
    faults.set("held_by=UNIQUE\n");
    let d = spawn("hailo", &faults).ready();
    assert_eq!(caption(&d, &png).error_code(503), "device_error");
}

#[test]
fn a_device_slower_than_the_run_timeout_fails_and_a_longer_timeout_serves() {
    let (png, want) = case();
    // Each network run takes 30 ms on this "device".
    let faults = Faults::new("slow", "run_ms=30\n");
    let short = spawn("hailo", &faults).set("hailo.run_timeout_ms=10");
    // The warm-up caption finds out at start, and says what timed out.
    let err = short.failure();
    assert!(
        err.contains("timeout 10 ms") && err.contains("HAILO_TIMEOUT"),
        "{err}"
    );
    // Without the warm-up, the request gets the device error.
    let d = short.set("warmup=false").ready();
    assert_eq!(caption(&d, &png).error_code(503), "device_error");
    drop(d);
    let d = spawn("hailo", &faults)
        .set("hailo.run_timeout_ms=5000")
        .ready();
    let r = caption(&d, &png);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["caption"], want.as_str());
}

#[test]
fn hailo_settings_out_of_range_are_refused_at_start() {
    for (kv, key) in [
        ("hailo.scheduler_priority=32", "hailo.scheduler_priority"),
        ("hailo.run_timeout_ms=0", "hailo.run_timeout_ms"),
        ("hailo.group_id=", "hailo.group_id"),
    ] {
        let err = Spawn::new().set(kv).failure();
        assert!(err.contains(key), "{kv}: {err}");
    }
}

#[test]
fn a_model_in_hailo_florences_flat_layout_serves_captions_on_the_device() {
    let faults = Faults::new("flat", "");
    let (png, want) = case();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hailo-florence-layout-daemon");
    common::model_copies::hailo_florence_layout(&common::model_dir(), &dir);
    // auto takes the device: this layout has nothing else to run on.
    let d = spawn("auto", &faults).model_dir(&dir).ready();
    let h = d.get("/health").json();
    assert_eq!(h["backend"], "hailo", "{h}");
    assert!(reason(&h).contains("hailo-florence's layout"), "{h}");
    let r = caption(&d, &png);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["caption"], want.as_str());
    // VQA needs ONNX text graphs this layout does not have.
    let r = d.post_json(
        "/v1/vqa",
        &serde_json::json!({"image": b64(&png), "question": "what is it?"}),
    );
    assert_eq!(r.error_code(501), "vqa_not_configured");
    // Other tasks are the request's problem on this model, and say why.
    let r = d.post_json(
        "/v1/caption",
        &serde_json::json!({"image": b64(&png), "task": "detailed_caption"}),
    );
    assert_eq!(r.error_code(422), "invalid_parameters");
    assert!(r.text().contains("hailo-florence"), "{}", r.text());
    drop(d);
    // backend=onnx cannot run it, and start-up says so.
    let err = Spawn::new().set("backend=onnx").model_dir(&dir).failure();
    assert!(err.contains("hailo-florence's layout"), "{err}");
    // `florenced signature` describes its one ONNX graph.
    let out = common::process::succeed(
        std::process::Command::new(env!("CARGO_BIN_EXE_florenced"))
            .args(["signature", "--model-dir"])
            .arg(&dir),
    );
    let graphs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = graphs
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["graph"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["vision_encoder"]);
}

/// `florenced run --backend hailo` loads through the same engine call as the
/// daemon's element: the same caption, from the same backend, for the same
/// reason.
#[test]
fn run_with_backend_hailo_answers_as_the_daemon_does() {
    let faults = Faults::new("run", "");
    let (png, want) = case();
    let d = spawn("hailo", &faults).ready();
    let daemon_reason = reason(&d.get("/health").json()).to_owned();
    assert!(
        daemon_reason.starts_with("backend=hailo"),
        "{daemon_reason}"
    );
    let r = caption(&d, &png);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["caption"], want.as_str());
    drop(d);
    let image = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("run-hailo-{}.png", std::process::id()));
    std::fs::write(&image, &png).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_florenced"))
        .args(["run", "--backend", "hailo", "--verbose", "--threads", "2"])
        .arg("--model-dir")
        .arg(common::model_dir())
        .arg(&image)
        .env(HAILORT_LIBRARY_ENV, standin())
        .env(BRIDGE_DIR_ENV, bridges())
        .env("FLORENCE_HAILO_STANDIN_FAULTS", &faults.0)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&image);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["result"], want.as_str(), "{line}");
    assert_eq!(line["backend"], "hailo", "{line}");
    assert_eq!(line["backend_reason"], daemon_reason.as_str(), "{line}");
    // Other tasks of this onnx-community model stay on ONNX Runtime.
    let od = std::process::Command::new(env!("CARGO_BIN_EXE_florenced"))
        .args(["run", "--backend", "hailo", "--verbose", "--threads", "2"])
        .args(["--task", "od", "--max-new-tokens", "8"])
        .arg("--model-dir")
        .arg(common::model_dir())
        .arg(root().join("tests/fixtures/images/scene_640x480.png"))
        .env(HAILORT_LIBRARY_ENV, standin())
        .env(BRIDGE_DIR_ENV, bridges())
        .env("FLORENCE_HAILO_STANDIN_FAULTS", &faults.0)
        .output()
        .unwrap();
    assert!(
        od.status.success(),
        "{}",
        String::from_utf8_lossy(&od.stderr)
    );
    let line: serde_json::Value = serde_json::from_slice(&od.stdout).unwrap();
    assert_eq!(line["backend"], "onnx-cpu", "{line}");
    assert_eq!(line["backend_reason"], daemon_reason.as_str(), "{line}");
}
