//! florenced under a (simulated) systemd: READY=1 only once /health is 200,
//! watchdog pings, STOPPING=1 on SIGTERM with in-flight requests finishing.

mod common;

use std::os::unix::net::UnixDatagram;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::process::succeed;
use common::scratch::Scratch;
use common::*;
use serde_json::json;

#[test]
fn notify_ready_watchdog_and_graceful_stop() {
    let scratch = Scratch::new("notify");
    let sock_path = scratch.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let (tx, rx) = mpsc::channel::<(Instant, String)>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            if tx.send((Instant::now(), msg)).is_err() {
                break;
            }
        }
    });

    let mut d = Spawn::new()
        .env("NOTIFY_SOCKET", &sock_path.display().to_string())
        .env("WATCHDOG_USEC", "400000")
        .set("max_tokens=1000")
        .start();
    let mut seen: Vec<String> = Vec::new();
    // Wait for READY=1; at that moment /health must already be 200.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, msg) = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("no READY=1 within 60 s");
        seen.push(msg.clone());
        if msg.lines().any(|l| l == "READY=1") {
            break;
        }
    }
    assert_eq!(d.get("/health").status, 200);
    assert!(
        seen.iter().any(|m| m.contains("STATUS=loading")),
        "a STATUS line while loading: {seen:?}"
    );

    // Watchdog pings at about a quarter of WATCHDOG_USEC while idle.
    let start = Instant::now();
    let mut pings = 0;
    while start.elapsed() < Duration::from_millis(800) {
        if let Ok((_, m)) = rx.recv_timeout(Duration::from_millis(100))
            && m.lines().any(|l| l == "WATCHDOG=1")
        {
            pings += 1;
        }
    }
    assert!(pings >= 3, "{pings} watchdog pings in 0.8 s");

    // Three long requests in flight, then SIGTERM: they finish, new ones get 503.
    let png = fixture_png("scene_640x480");
    let body = json!({"image": b64(&png), "max_length": 300, "min_length": 300, "num_beams": 4})
        .to_string();
    let inflight: Vec<_> = (0..3)
        .map(|_| post_caption_async(d.addr, body.clone()))
        .collect();
    // Let the requests reach the daemon.
    let start = Instant::now();
    loop {
        let m = d.get("/metrics").json();
        if m["inferences_running"].as_u64() == Some(1) && m["queue_depth"].as_u64() == Some(2) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "requests never queued: {m}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    d.signal(libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, msg) = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("no STOPPING=1 after SIGTERM");
        if msg.lines().any(|l| l == "STOPPING=1") {
            break;
        }
    }
    let late = d.post_json("/v1/caption", &json!({"image": b64(&png)}));
    assert_eq!(late.error_code(503), "model_not_ready");
    assert_eq!(d.get("/health").status, 503);
    for h in inflight {
        let r = h.join().unwrap();
        assert_eq!(r.status, 200, "an in-flight request was cut: {}", r.text());
        assert_eq!(r.json()["token_count"], 300);
    }
    let status = d.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn a_stuck_worker_stops_the_watchdog() {
    // Without a watchdog nothing is sent; with one, a long inference (far longer
    // than half the watchdog interval) pauses the pings until it finishes.
    let scratch = Scratch::new("watchdog");
    let sock_path = scratch.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let d = Spawn::new()
        .env("NOTIFY_SOCKET", &sock_path.display().to_string())
        .env("WATCHDOG_USEC", "200000")
        .set("max_tokens=1000")
        .ready();
    let png = fixture_png("scene_640x480");
    let body = json!({"image": b64(&png), "max_length": 1000, "min_length": 1000, "num_beams": 8})
        .to_string();
    let h = post_caption_async(d.addr, body);
    // Wait until the inference runs, then drain what was sent before.
    let start = Instant::now();
    while d.get("/metrics").json()["inferences_running"] != 1 {
        assert!(start.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200));
    let mut buf = [0u8; 1024];
    while sock.recv(&mut buf).is_ok() {}
    // During the long inference: silence for a while.
    let quiet_from = Instant::now();
    let mut pinged_during = false;
    while quiet_from.elapsed() < Duration::from_millis(500) {
        if let Ok(n) = sock.recv(&mut buf)
            && String::from_utf8_lossy(&buf[..n]).contains("WATCHDOG=1")
        {
            pinged_during = true;
        }
    }
    let r = h.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        !pinged_during,
        "watchdog pinged while the worker was stuck in a long inference"
    );
    // And the pings resume afterwards.
    let start = Instant::now();
    let mut resumed = false;
    while start.elapsed() < Duration::from_secs(2) && !resumed {
        if let Ok(n) = sock.recv(&mut buf) {
            resumed = String::from_utf8_lossy(&buf[..n]).contains("WATCHDOG=1");
        }
    }
    assert!(resumed, "watchdog pings did not resume");
}

#[test]
fn verify_script_passes_on_a_running_daemon_and_fails_on_a_dead_one() {
    let d = Spawn::new().ready();
    let out = succeed(
        std::process::Command::new("bash")
            .arg(root().join("systemd/verify.sh"))
            .args(["--url", &format!("http://{}", d.addr)]),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\"caption\":\""), "{text}");
    let addr = d.addr;
    drop(d);
    // Nothing listens there any more: after waiting 2 s for /health (instead of the
    // default 120 s), verify.sh gives up with a FAIL line and exit status 1.
    let out = std::process::Command::new("bash")
        .arg(root().join("systemd/verify.sh"))
        .args(["--url", &format!("http://{addr}"), "--wait", "2"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("FAIL:") && err.contains("/health"), "{err}");
}

#[test]
fn the_unit_file_is_valid_for_systemd() {
    let unit = std::fs::read_to_string(root().join("systemd/hailo-florence.service")).unwrap();
    for key in [
        "Type=notify",
        "WatchdogSec=",
        "MemoryMax=3G",
        "Restart=on-failure",
        "RestartSec=10s",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "LimitNOFILE=4096",
    ] {
        assert!(unit.contains(key), "{key} missing from the unit");
    }
    // The shipped example configuration is accepted as it is.
    succeed(
        std::process::Command::new(env!("CARGO_BIN_EXE_florenced"))
            .args(["--config"])
            .arg(root().join("systemd/hailo-florence.yaml"))
            .arg("--print-config")
            .env_remove("FLORENCED_API_KEY"),
    );
    let analyze = which("systemd-analyze")
        .expect("systemd-analyze (package systemd, installed by scripts/setup.sh)");
    let scratch = Scratch::new("unit");
    let dir = scratch.path();
    let path = dir.join("hailo-florence.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/florenced", env!("CARGO_BIN_EXE_florenced"))
            .replace(
                "/usr/local/lib/florence/hailo-device-check.sh",
                &root()
                    .join("systemd/hailo-device-check.sh")
                    .display()
                    .to_string(),
            ),
    )
    .unwrap();
    let out = std::process::Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // Warnings about the host (no systemd running, missing users) are not the unit's fault.
    let problems: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("hailo-florence.service"))
        .filter(|l| !l.contains("User") && !l.contains("Group"))
        .collect();
    assert!(problems.is_empty(), "{err}");
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

#[test]
fn health_is_503_and_not_ready_while_the_model_loads() {
    // A model directory whose config.json is a FIFO: loading blocks on it until
    // the test writes the file, so "loading" is observed for as long as needed.
    let scratch = Scratch::new("slow-model");
    let dir = scratch.path().join("model");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(model_dir()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "config.json" {
            std::os::unix::fs::symlink(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    let fifo = dir.join("config.json");
    let c_path = std::ffi::CString::new(fifo.display().to_string()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);

    let sock_path = scratch.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let d = Spawn::new()
        .model_dir(&dir)
        .env("NOTIFY_SOCKET", &sock_path.display().to_string())
        .start();
    // Listening, not loaded: /health and requests say so; /metrics answers.
    let png = fixture_png("pattern_200x300");
    for _ in 0..3 {
        let h = d.get("/health");
        assert_eq!(h.status, 503, "{}", h.text());
        assert_eq!(h.json()["status"], "unhealthy", "{}", h.text());
        assert_eq!(h.json()["model_loaded"], false, "{}", h.text());
        let r = d.post_json("/v1/caption", &json!({"image": b64(&png)}));
        assert_eq!(r.error_code(503), "model_not_ready");
        assert!(r.text().contains("loading"), "{}", r.text());
        assert_eq!(d.get("/metrics").status, 200);
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut notes = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = sock.recv(&mut buf) {
        notes.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(
        notes.iter().any(|m| m.contains("STATUS=loading")),
        "{notes:?}"
    );
    assert!(
        !notes.iter().any(|m| m.lines().any(|l| l == "READY=1")),
        "READY=1 while loading: {notes:?}"
    );
    // The file arrives: the model loads, READY=1 follows and requests succeed.
    std::fs::write(
        &fifo,
        std::fs::read(model_dir().join("config.json")).unwrap(),
    )
    .unwrap();
    let start = Instant::now();
    loop {
        if let Ok(n) = sock.recv(&mut buf)
            && String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == "READY=1")
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no READY=1");
    }
    assert_eq!(d.get("/health").status, 200);
    let r = d.post_json("/v1/caption", &json!({"image": b64(&png)}));
    assert_eq!(r.status, 200, "{}", r.text());
}

/// The unit's ExecStartPre: only `backend: hailo` needs the device node.
#[test]
fn the_device_check_runs_only_for_the_hailo_backend() {
    let scratch = Scratch::new("devcheck");
    let dir = scratch.path();
    let check = |backend: &str, device: &str| {
        let config = dir.join(format!("{backend}.yaml"));
        std::fs::write(
            &config,
            format!("port: 11438\nbackend: {backend}   # comment\n"),
        )
        .unwrap();
        std::process::Command::new(root().join("systemd/hailo-device-check.sh"))
            .arg(&config)
            .arg(device)
            .env("FLORENCE_DAEMON_BIN", env!("CARGO_BIN_EXE_florenced"))
            .env_remove("FLORENCED_BACKEND")
            .output()
            .unwrap()
    };
    let missing = dir.join("hailo0");
    for backend in ["auto", "onnx"] {
        assert!(
            check(backend, missing.to_str().unwrap()).status.success(),
            "{backend}"
        );
    }
    let out = check("hailo", missing.to_str().unwrap());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not exist") && err.contains("driver"),
        "{err}"
    );
    // A character device the service can read and write passes.
    assert!(check("hailo", "/dev/null").status.success());
}
