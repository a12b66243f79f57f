//! The unit's hardening: systemd-analyze's exposure rating with the IP policy
//! drop-in, the drop-in rendered from `host`, and florenced serving under the
//! unit's own seccomp filter. systemd is not PID 1 here (nor in CI's
//! container), so `systemd-run` cannot start a transient unit: seccomp-exec
//! (seccomp-exec/) applies the unit's SystemCallFilter=, SystemCallErrorNumber=
//! and MemoryDenyWriteExecute= with libseccomp as systemd does, then execs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::notify::NotifySocket;
use common::process::succeed;
use common::scratch::Scratch;
use common::*;
use serde_json::json;

const TARGET_EXPOSURE: f64 = 2.0;

fn unit() -> PathBuf {
    root().join("systemd/hailo-florence.service")
}

/// target/debug/seccomp-exec.
fn seccomp_exec() -> PathBuf {
    built("seccomp-exec")
}

/// systemd/ip-policy.sh CONFIG OUTPUT [ARGS]: its exit status, stderr and output.
fn ip_policy(
    config: &Path,
    output: &Path,
    args: &[&str],
    host_env: Option<&str>,
) -> (i32, String, String) {
    let mut c = Command::new("sh");
    c.arg(root().join("systemd/ip-policy.sh"))
        .arg(config)
        .arg(output)
        .args(args)
        .env("FLORENCE_DAEMON_BIN", env!("CARGO_BIN_EXE_florenced"))
        .env_remove("FLORENCED_HOST");
    if let Some(h) = host_env {
        c.env("FLORENCED_HOST", h);
    }
    let out = c.output().unwrap();
    let text = std::fs::read_to_string(output).unwrap_or_default();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        text,
    )
}

/// `systemd-analyze security --offline=true` on the unit in `dir` (with its
/// drop-ins): the overall exposure and the whole report.
fn exposure(dir: &Path) -> (f64, String) {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(dir.join("hailo-florence.service"))
        .output()
        .expect("systemd-analyze (package systemd, installed by scripts/setup.sh)");
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    // "→ Overall exposure level for hailo-florence.service: 1.3 OK 🙂"
    let level = report
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for hailo-florence.service:"))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no overall exposure in: {report}"));
    (level, report)
}

/// The unit (paths as shipped) with an ip-policy.conf drop-in beside it.
fn unit_with_drop_in(dir: &Path, config: &Path, args: &[&str]) -> String {
    std::fs::copy(unit(), dir.join("hailo-florence.service")).unwrap();
    let conf = dir.join("hailo-florence.service.d/ip-policy.conf");
    let (code, err, text) = ip_policy(config, &conf, args, None);
    assert_eq!(code, 0, "{err}");
    text
}

#[test]
fn the_units_exposure_is_at_most_2_with_the_loopback_ip_policy() {
    let scratch = Scratch::new("exposure");
    let dir = scratch.0.clone();
    // The shipped configuration binds loopback, as the installed default does.
    let policy = unit_with_drop_in(&dir, &root().join("systemd/hailo-florence.yaml"), &[]);
    assert!(
        policy.contains("IPAddressDeny=any\nIPAddressAllow=localhost\n"),
        "{policy}"
    );
    let (level, report) = exposure(&dir);
    assert!(
        level <= TARGET_EXPOSURE,
        "exposure {level} > {TARGET_EXPOSURE}:\n{report}"
    );
    // The drop-in was read: systemd-analyze saw the localhost-only allow list.
    let ip_line = report
        .lines()
        .find(|l| l.contains("IPAddressDeny="))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(ip_line.contains("only localhost"), "{ip_line}");
    // The settings the rating rests on are really in the unit.
    let text = std::fs::read_to_string(unit()).unwrap();
    for key in [
        "SystemCallFilter=@system-service\n",
        "SystemCallFilter=~@privileged @resources\n",
        "SystemCallErrorNumber=EPERM\n",
        "MemoryDenyWriteExecute=yes\n",
        "ProtectProc=invisible\n",
        "UMask=0077\n",
        "RemoveIPC=yes\n",
        "PrivateMounts=yes\n",
    ] {
        assert!(text.contains(key), "{key} missing from the unit");
    }
}

#[test]
fn a_network_bind_keeps_the_exposure_within_the_target_too() {
    let scratch = Scratch::new("exposure-net");
    let dir = scratch.0.clone();
    let config = dir.join("net.yaml");
    std::fs::write(&config, "host: 0.0.0.0\nport: 11438\n").unwrap();
    unit_with_drop_in(&dir, &config, &[]);
    let (level, report) = exposure(&dir);
    assert!(level <= TARGET_EXPOSURE, "exposure {level}:\n{report}");
}

#[test]
fn the_ip_policy_follows_the_configured_host() {
    let scratch = Scratch::new("ip-policy");
    let dir = scratch.0.clone();
    let config = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let out = dir.join("d/ip-policy.conf");
    let localhost_only = "IPAddressDeny=any\nIPAddressAllow=localhost\n";
    for (name, text) in [
        ("v4.yaml", "port: 1\nhost: 127.0.0.1   # loopback\n"),
        ("v6.yaml", "host: '::1'\n"),
        ("name.yaml", "host: \"localhost\"\n"),
        ("none.yaml", "port: 11438\n"),
    ] {
        let (code, err, text) = ip_policy(&config(name, text), &out, &[], None);
        assert_eq!(code, 0, "{name}: {err}");
        assert!(text.starts_with("# Rendered by ip-policy.sh"), "{text}");
        assert!(text.contains(&format!("[Service]\n# florenced listens on loopback: no other peer can reach it.\n{localhost_only}")), "{name}: {text}");
    }
    // Any other bind: every peer, unless --allow names them.
    let net = config("net.yaml", "host: 0.0.0.0\n");
    let (code, _, text) = ip_policy(&net, &out, &[], None);
    assert_eq!(code, 0);
    assert!(text.contains("IPAddressDeny=\nIPAddressAllow=\n"), "{text}");
    let (code, _, text) = ip_policy(
        &net,
        &out,
        &["--allow", "192.168.1.0/24  fd00::/8 link-local"],
        None,
    );
    assert_eq!(code, 0);
    assert!(
        text.contains(
            "IPAddressDeny=any\nIPAddressAllow=localhost 192.168.1.0/24 fd00::/8 link-local\n"
        ),
        "{text}"
    );
    // FLORENCED_HOST overrides the file, as it does for florenced.
    let (_, _, text) = ip_policy(&net, &out, &[], Some("127.0.0.2"));
    assert!(text.contains(localhost_only), "{text}");
    // Nothing but addresses reaches the unit file; the old drop-in stays.
    let before = std::fs::read_to_string(&out).unwrap();
    let (code, err, after) = ip_policy(&net, &out, &["--allow", "10.0.0.0/8\nUser=root"], None);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not an address"), "{err}");
    assert_eq!(after, before);
    let (code, _, _) = ip_policy(&dir.join("missing.yaml"), &out, &[], None);
    assert_eq!(code, 1);
}

/// `spawn`'s florenced command, run through seccomp-exec with the unit's filter.
fn under_the_units_filter(spawn: &Spawn) -> Command {
    let base = spawn.command();
    let mut c = Command::new(seccomp_exec());
    c.arg("--unit")
        .arg(unit())
        .arg("--")
        .arg(base.get_program())
        .args(base.get_args())
        .current_dir(root());
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c
}

/// Seccomp mode (2: filtering) and number of filters of a running process.
fn seccomp_status(pid: u32) -> (String, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    (field("Seccomp:"), field("Seccomp_filters:"))
}

/// Waits for a notify message with the line `line` (READY=1, RELOADING=1...).
/// Waits for the daemon's log line with `message` (the reader thread may be
/// behind the notify socket) and returns it.
fn wait_log(d: &Daemon, message: &str) -> serde_json::Value {
    let start = Instant::now();
    loop {
        if let Some(line) = d.log_lines().into_iter().find(|l| l["message"] == message) {
            return line;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no {message:?} line: {:?}",
            d.log_lines()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn florenced_serves_reloads_and_stops_under_the_units_seccomp_filter() {
    let scratch = Scratch::new("seccomp");
    let dir = scratch.0.clone();
    let systemd = NotifySocket::new("seccomp");
    // A configuration file, so SIGHUP has a pipeline setting to change; the
    // graph cache on, as the unit's CacheDirectory= turns it on.
    let config = dir.join("florenced.yaml");
    std::fs::write(&config, "queue_depth: 8\n").unwrap();
    let mut spawn = Spawn::new()
        .env("NOTIFY_SOCKET", &systemd.path.display().to_string())
        .env("WATCHDOG_USEC", "2000000")
        .env("CACHE_DIRECTORY", &dir.join("cache").display().to_string());
    spawn
        .args
        .extend(["--config".into(), config.display().to_string()]);
    let mut command = under_the_units_filter(&spawn);
    command.env_remove("FLORENCE_GRAPH_CACHE");
    let mut d = spawn.start_command(command);
    // The daemon itself (seccomp-exec exec'd it) runs under two more filters
    // than this test (which a container may already filter):
    // MemoryDenyWriteExecute's and the SystemCallFilter.
    let (_, ours) = seccomp_status(std::process::id());
    let ours: u32 = ours.parse().unwrap_or(0);
    assert_eq!(
        seccomp_status(d.child.id()),
        ("2".into(), (ours + 2).to_string())
    );
    systemd.wait_for("READY=1");
    assert_eq!(d.get("/health").status, 200);

    let png = fixture_png("scene_640x480");
    let caption = |beams: u32| {
        let r = d.post_json(
            "/v1/caption",
            &json!({"image": b64(&png), "num_beams": beams}),
        );
        assert_eq!(r.status, 200, "{beams} beams: {}", r.text());
        let v = r.json();
        assert!(v["token_count"].as_u64().unwrap_or(0) > 0, "{v}");
        v["caption"].as_str().unwrap_or_default().to_owned()
    };
    let greedy = caption(1);
    let beams = caption(3);
    assert!(!greedy.is_empty() && !beams.is_empty());

    // SIGHUP with a pipeline setting changed: the model is loaded again into
    // new pipelines (new ONNX Runtime sessions and GStreamer threads).
    std::fs::write(&config, "queue_depth: 4\n").unwrap();
    d.signal(libc::SIGHUP);
    systemd.wait_for("RELOADING=1");
    systemd.wait_for("READY=1");
    let reloaded = wait_log(&d, "configuration reloaded");
    assert_eq!(reloaded["model_reloaded"], true, "{reloaded}");
    assert_eq!(caption(3), beams);

    d.signal(libc::SIGTERM);
    systemd.wait_for("STOPPING=1");
    let status = d.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "exit status {status:?}");
    wait_log(&d, "stopped");
    // Nothing complained: no error lines, no GLib criticals, no refused call
    // that someone reported.
    let logs = d.logs.lock().unwrap().clone();
    for line in &logs {
        assert!(
            !line.contains("\"level\":\"ERROR\"")
                && !line.contains("CRITICAL")
                && !line.contains("Operation not permitted"),
            "{line}\nall: {logs:?}"
        );
    }
    assert!(
        logs.iter().any(|l| l.starts_with("seccomp-exec: allowing")),
        "{logs:?}"
    );
}

#[test]
fn calls_outside_the_filter_fail_with_eperm() {
    // setpriority (nice) is in @resources, which the unit removes: allowed
    // without the filter, EPERM ("Operation not permitted") under it.
    let plain = succeed(Command::new("nice").args(["-n", "1", "true"]));
    assert!(plain.stderr.is_empty(), "{:?}", plain.stderr);
    let filtered = Command::new(seccomp_exec())
        .arg("--unit")
        .arg(unit())
        .args(["--", "nice", "-n", "1", "true"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&filtered.stderr);
    assert!(
        err.contains("cannot set niceness: Operation not permitted"),
        "{err}"
    );
    // MemoryDenyWriteExecute: a writable and executable mapping is refused.
    let wx = "import mmap; mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC); print('mapped')";
    let plain = succeed(Command::new("/usr/bin/python3").args(["-c", wx]));
    assert_eq!(String::from_utf8_lossy(&plain.stdout).trim(), "mapped");
    let filtered = Command::new(seccomp_exec())
        .arg("--unit")
        .arg(unit())
        .args(["--", "/usr/bin/python3", "-c", wx])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&filtered.stderr);
    assert!(!filtered.status.success(), "{err}");
    assert!(
        err.contains("PermissionError: [Errno 1] Operation not permitted"),
        "{err}"
    );
}

#[test]
fn the_filter_follows_the_unit_file() {
    // The allow list is the unit's lines expanded by the installed systemd:
    // @system-service's calls, without @privileged's and @resources'.
    let allowed = |unit: &Path| {
        let out = succeed(
            Command::new(seccomp_exec())
                .arg("--unit")
                .arg(unit)
                .arg("--print-allowed"),
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect::<std::collections::BTreeSet<_>>()
    };
    let shipped = allowed(&unit());
    for call in [
        "read", "openat", "mmap", "clone3", "accept4", "sendto", "ioctl",
    ] {
        assert!(shipped.contains(call), "{call} not allowed");
    }
    for call in [
        "setpriority",
        "sched_setaffinity",
        "chroot",
        "setuid",
        "mount",
        "ptrace",
    ] {
        assert!(!shipped.contains(call), "{call} allowed");
    }
    // A drop-in that gives @resources back changes what the helper applies.
    let scratch = Scratch::new("filter-drop-in");
    let dir = scratch.0.clone();
    let drop_in = dir.join("resources.conf");
    std::fs::write(&drop_in, "[Service]\nSystemCallFilter=@resources\n").unwrap();
    let out = succeed(
        Command::new(seccomp_exec())
            .arg("--unit")
            .arg(unit())
            .arg("--drop-in")
            .arg(&drop_in)
            .arg("--print-allowed"),
    );
    let widened = String::from_utf8_lossy(&out.stdout);
    assert!(widened.lines().any(|l| l == "setpriority"), "{widened}");
}

#[test]
fn the_trace_shows_no_call_outside_the_filter_but_the_optional_ones() {
    // strace through start-up, captions, a reload and a stop; the script fails
    // on a call the filter refuses that is not known to be optional.
    let out = Command::new("bash")
        .arg(root().join("scripts/trace-syscalls.sh"))
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_florenced"))
        .arg("--helper")
        .arg(seccomp_exec())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}\n{err}");
    assert!(text.contains("every other call seen is allowed"), "{text}");
    // The trace covered the daemon's work: sockets served, threads spawned.
    for call in ["accept4", "clone3", "sendto", "openat"] {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().nth(1) == Some(call)),
            "{call} not in the trace:\n{text}"
        );
    }
}
