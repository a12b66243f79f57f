//! florenced's process lifecycle with the real binary: SIGHUP reloads without
//! dropping requests, SIGUSR1/SIGUSR2 are ignored, a failed reload changes
//! nothing and says why, a broken model recovers on SIGHUP, SIGTERM stops
//! within its bound with an answer for every client, and a SIGKILLed daemon
//! starts again on its port.
//!
//! Every wait is for an event (a log line, a notification, a gauge); the
//! durations are hang guards only.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::notify::NotifySocket;
use common::scratch::Scratch;
use common::*;
use serde_json::json;

const HANG_GUARD: Duration = Duration::from_secs(60);

const DECODER: &str = "onnx/decoder_model_merged.onnx";

/// Replaces the decoder of a linked model directory by a truncated copy.
fn corrupt_decoder(dir: &Path) {
    let bytes = std::fs::read(model_dir().join(DECODER)).unwrap();
    std::fs::remove_file(dir.join(DECODER)).unwrap();
    std::fs::write(dir.join(DECODER), &bytes[..bytes.len() / 3]).unwrap();
}

fn restore_decoder(dir: &Path) {
    std::fs::remove_file(dir.join(DECODER)).unwrap();
    std::os::unix::fs::symlink(model_dir().join(DECODER), dir.join(DECODER)).unwrap();
}

/// Waits until all of `n` requests were admitted (answered, running or queued)
/// and one is running; returns how many wait in the queue then.
fn wait_admitted(d: &Daemon, n: u64) -> u64 {
    let start = Instant::now();
    loop {
        let m = d.get("/metrics").json();
        let count = |k: &str| m[k].as_u64().unwrap_or(0);
        let (running, queued) = (count("inferences_running"), count("queue_depth"));
        if running == 1 && count("requests_total") + running + queued == n {
            return queued;
        }
        assert!(start.elapsed() < HANG_GUARD, "never all admitted: {m}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn caption(d: &Daemon, headers: &[(&str, &str)]) -> Response {
    let body = json!({"image": b64(&fixture_png("pattern_200x300")), "max_length": 5});
    let mut h = vec![("content-type", "application/json")];
    h.extend_from_slice(headers);
    request(
        d.addr,
        "POST",
        "/v1/caption",
        &h,
        body.to_string().as_bytes(),
    )
}

fn prometheus(d: &Daemon) -> String {
    d.get("/metrics?format=prometheus").text()
}

fn still_running(d: &mut Daemon) {
    assert!(
        d.child.try_wait().unwrap().is_none(),
        "the daemon exited: {:#?}",
        d.log_lines()
    );
}

#[test]
fn sighup_reloads_without_dropping_requests_and_usr_signals_are_ignored() {
    let scratch = Scratch::new("reload");
    let (a, b) = (scratch.model("tiny-a"), scratch.model("tiny-b"));
    let config = scratch.config(&format!(
        "model_dir: {}\nmax_tokens: 1000\nqueue_depth: 16\n",
        a.display()
    ));
    let systemd = NotifySocket::new("reload");
    let mut d = Spawn::with_config(&config)
        .env("NOTIFY_SOCKET", &systemd.path.display().to_string())
        .start();
    systemd.wait_for("READY=1");

    // SIGUSR1 and SIGUSR2: a log line each, nothing else.
    d.signal(libc::SIGUSR1);
    d.wait_log("SIGUSR1 ignored", 1);
    d.signal(libc::SIGUSR2);
    d.wait_log("SIGUSR2 ignored", 1);
    still_running(&mut d);
    assert_eq!(d.get("/health").status, 200);

    // One request running and three queued on the first model's pipeline...
    let long = json!({"image": b64(&fixture_png("scene_640x480")),
        "max_length": 300, "min_length": 300, "num_beams": 4})
    .to_string();
    let before: Vec<_> = (0..4)
        .map(|_| post_caption_async(d.addr, long.clone()))
        .collect();
    wait_admitted(&d, 4);

    // ...when the configuration changes: another model, an API key, and a key
    // that only a restart can change.
    std::fs::write(
        &config,
        format!(
            "model_dir: {}\nmax_tokens: 1000\nqueue_depth: 16\napi_key: reload-key\nlog_level: debug\n",
            b.display()
        ),
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    let reloading = systemd.wait_for("RELOADING=1");
    assert!(
        reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading}"
    );
    systemd.wait_for("READY=1");
    let done = d.wait_log("configuration reloaded", 1);
    assert_eq!(done["model_reloaded"], true, "{done}");
    let kept = d.wait_log("only after a restart", 1);
    assert!(
        kept["keys"].as_str().unwrap().contains("log_level"),
        "{kept}"
    );

    // New requests see the new configuration and the new model...
    assert_eq!(caption(&d, &[]).error_code(401), "unauthorized");
    let r = caption(&d, &[("x-api-key", "reload-key")]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["model_variant"], "tiny-b");

    // ...while every request admitted before finished on the old one.
    for h in before {
        let r = h.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["model_variant"], "tiny-a");
        assert_eq!(r.json()["token_count"], 300);
    }
    d.wait_log(
        "replaced by the reload finished their requests and stopped",
        1,
    );
    still_running(&mut d);
    assert!(prometheus(&d).contains("florenced_config_reloads_total{result=\"success\"} 1"));
}

#[test]
fn a_failed_reload_keeps_serving_and_says_why() {
    let scratch = Scratch::new("bad-reload");
    let model = scratch.model("tiny-c");
    let good = format!("model_dir: {}\n", model.display());
    let config = scratch.config(&good);
    let mut d = Spawn::with_config(&config).ready();
    let health_reload_error = |d: &Daemon| {
        let h = d.get("/health");
        assert_eq!(h.status, 200, "{}", h.text());
        h.json()["reload_error"].as_str().map(str::to_owned)
    };

    // A mistake in the file: named in the log and on /health; nothing changes.
    std::fs::write(&config, format!("{good}queue_dept: 3\n")).unwrap();
    d.signal(libc::SIGHUP);
    let failed = d.wait_log("reload failed", 1);
    assert!(failed["level"] == "ERROR", "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains("queue_dept"),
        "{failed}"
    );
    assert!(health_reload_error(&d).unwrap().contains("queue_dept"));
    assert!(prometheus(&d).contains("florenced_config_last_reload_successful 0"));
    assert_eq!(caption(&d, &[]).status, 200);

    // The model directory removed while serving: the loaded model goes on, the
    // reload that would need the directory fails and says which.
    std::fs::write(&config, &good).unwrap();
    let gone = scratch.0.join("tiny-c.gone");
    std::fs::rename(&model, &gone).unwrap();
    d.signal(libc::SIGHUP);
    let failed = d.wait_log("reload failed", 2);
    let why = failed["error"].as_str().unwrap();
    assert!(why.contains(&model.display().to_string()), "{failed}");
    assert!(
        health_reload_error(&d)
            .unwrap()
            .contains(&model.display().to_string())
    );
    assert_eq!(caption(&d, &[]).status, 200);

    // Back in place: the reload succeeds and the failure is no longer reported.
    std::fs::rename(&gone, &model).unwrap();
    d.signal(libc::SIGHUP);
    d.wait_log("configuration reloaded", 1);
    assert_eq!(health_reload_error(&d), None);
    assert!(prometheus(&d).contains("florenced_config_last_reload_successful 1"));

    // A graph corrupted in place: the reload loads it, fails, and keeps the old model.
    corrupt_decoder(&model);
    d.signal(libc::SIGHUP);
    let failed = d.wait_log("reload failed", 3);
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("decoder_model_merged"),
        "{failed}"
    );
    assert_eq!(caption(&d, &[]).status, 200);
    restore_decoder(&model);
    d.signal(libc::SIGHUP);
    d.wait_log("configuration reloaded", 2);
    assert_eq!(health_reload_error(&d), None);
    assert_eq!(caption(&d, &[]).status, 200);
    still_running(&mut d);
}

#[test]
fn a_model_that_failed_to_load_recovers_on_sighup_without_a_restart() {
    let scratch = Scratch::new("recover");
    let model = scratch.model("tiny-d");
    corrupt_decoder(&model);
    let config = scratch.config(&format!(
        "model_dir: {}\nexit_on_load_failure: false\n",
        model.display()
    ));
    let mut d = Spawn::with_config(&config).start();
    let start = Instant::now();
    let h = loop {
        let h = d.get("/health");
        if h.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("decoder_model_merged"))
        {
            break h;
        }
        assert!(start.elapsed() < HANG_GUARD, "{}", h.text());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(h.status, 503);
    assert_eq!(caption(&d, &[]).error_code(503), "model_not_ready");

    restore_decoder(&model);
    d.signal(libc::SIGHUP);
    let done = d.wait_log("configuration reloaded", 1);
    assert_eq!(done["model_reloaded"], true, "{done}");
    let h = d.get("/health");
    assert_eq!(h.status, 200, "{}", h.text());
    assert_eq!(h.json()["model_loaded"], true);
    assert_eq!(caption(&d, &[]).status, 200);
    still_running(&mut d);
}

#[test]
fn at_the_shutdown_deadline_every_client_gets_an_answer_and_the_daemon_exits() {
    let mut d = Spawn::new()
        .set("shutdown_timeout_s=2")
        .set("queue_depth=40")
        .set("max_tokens=1000")
        .ready();
    // Forced to 1000 tokens with 8 beams: seconds each, far more than 2 s for all.
    let body = json!({"image": b64(&fixture_png("scene_640x480")),
        "max_length": 1000, "min_length": 1000, "num_beams": 8})
    .to_string();
    let addr = d.addr;
    let clients: Vec<_> = (0..30)
        .map(|_| try_post_caption_async(addr, body.clone()))
        .collect();
    let queued = wait_admitted(&d, 30);
    assert!(queued > 0, "every request was done before SIGTERM");
    d.signal(libc::SIGTERM);

    let (mut served, mut refused) = (0, 0);
    for c in clients {
        // A client cut off without an answer has no complete response to parse.
        let r = c.join().unwrap().expect("a complete HTTP response");
        match r.status {
            200 => served += 1,
            503 => {
                assert_eq!(r.error_code(503), "model_not_ready");
                assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
                refused += 1;
            }
            s => panic!("status {s}: {}", r.text()),
        }
    }
    assert_eq!(served + refused, 30);
    assert!(refused > 0, "nothing was refused at the deadline");
    let status = d.wait_exit(HANG_GUARD);
    assert!(status.success(), "exit status {status:?}");

    let logs = d.log_lines();
    let position = |what: &str| {
        logs.iter()
            .position(|l| l["message"].as_str().is_some_and(|m| m.starts_with(what)))
            .unwrap_or_else(|| panic!("no '{what}' in {logs:#?}"))
    };
    let timed_out = position("drain timed out");
    let stopped = logs
        .iter()
        .position(|l| l["message"] == "stopped")
        .unwrap_or_else(|| panic!("no 'stopped' in {logs:#?}"));
    assert!(timed_out < stopped);
    assert!(logs[timed_out]["refused"].as_u64().unwrap() <= refused);
    // Every answer was written before the daemon said it stopped.
    let answers = logs
        .iter()
        .enumerate()
        .filter(|(_, l)| l["endpoint"] == "/v1/caption" && l["status"].is_u64())
        .map(|(i, _)| i)
        .collect::<Vec<_>>();
    assert_eq!(answers.len(), 30, "{logs:#?}");
    assert!(answers.iter().all(|&i| i < stopped), "{logs:#?}");
    // No inference was still running in ONNX Runtime when the process ended.
    let ort_errors: Vec<_> = logs
        .iter()
        .filter(|l| l["target"] == "onnxruntime" && l["level"] == "ERROR")
        .collect();
    assert!(ort_errors.is_empty(), "{ort_errors:#?}");
}

#[test]
fn killed_during_inference_it_starts_again_on_the_same_port() {
    let mut d = Spawn::new().set("max_tokens=1000").ready();
    let port = d.addr.port();
    let body = json!({"image": b64(&fixture_png("scene_640x480")),
        "max_length": 1000, "min_length": 1000, "num_beams": 8})
    .to_string();
    let addr = d.addr;
    let client = try_post_caption_async(addr, body);
    wait_admitted(&d, 1);
    d.signal(libc::SIGKILL);
    let status = d.wait_exit(HANG_GUARD);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    assert!(
        client.join().unwrap().is_err(),
        "an answer from a killed daemon"
    );

    let d = Spawn::new().set(&format!("port={port}")).ready();
    assert_eq!(d.addr.port(), port);
    assert_eq!(caption(&d, &[]).status, 200);
}
