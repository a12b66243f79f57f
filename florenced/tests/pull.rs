//! `florenced pull` against a Hugging Face Hub on loopback
//! (`tests/python/loopback_hub.py`, serving the tiny model in the Hub's URL and
//! API layout): a full pull into the Hub cache, resume of an interrupted
//! transfer, a corrupt file refused, offline mode, clear errors, and the cache
//! shared with Python's huggingface_hub both ways.

mod common;
#[path = "common/installed.rs"]
mod installed;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

const REPO: &str = "onnx-community/Florence-2-base-ft";
const TOKEN: &str = "hf_loopback_token";
/// Hang guard for waits on events; never a duration that something must beat.
const HANG: Duration = Duration::from_secs(120);

/// The files a fp32 pull must fetch (and nothing else).
const FP32_FILES: [&str; 10] = [
    "config.json",
    "florence.json",
    "generation_config.json",
    "onnx/decoder_model_merged.onnx",
    "onnx/embed_tokens.onnx",
    "onnx/encoder_model.onnx",
    "onnx/vision_encoder.onnx",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
];

struct LoopbackHub {
    child: Child,
    stdin: Option<ChildStdin>,
    hub: u16,
    lines: Arc<(Mutex<Vec<Value>>, Condvar)>,
}

impl LoopbackHub {
    /// Serves the tiny model as REPO and as `test/private` (token only), plus `faults`.
    fn start(faults: &[&str]) -> LoopbackHub {
        let fixture = model_dir().display().to_string();
        let mut child = Command::new("python3")
            .arg(root().join("florenced/tests/python/loopback_hub.py"))
            .args(["--repo", &format!("{REPO}={fixture}")])
            .args(["--repo", &format!("test/private={fixture}")])
            .args(["--private", "test/private", "--token", TOKEN])
            .args(faults)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the loopback hub");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        lines.0.lock().unwrap().push(v);
                        lines.1.notify_all();
                    }
                }
            });
        }
        let mut hub = LoopbackHub {
            child,
            stdin,
            hub: 0,
            lines,
        };
        let ports = hub.wait_for(|v| v.get("hub").is_some());
        hub.hub = ports["hub"].as_u64().unwrap() as u16;
        hub
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.hub)
    }

    /// Waits (with a hang guard) for a line of the server's log matching `pred`.
    fn wait_for(&self, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + HANG;
        let mut lines = self.lines.0.lock().unwrap();
        loop {
            if let Some(v) = lines.iter().find(|v| pred(v)) {
                return v.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "the loopback hub never logged the awaited line: {lines:?}"
            );
            lines = self.lines.1.wait_timeout(lines, left).unwrap().0;
        }
    }

    /// The HTTP requests served so far.
    fn requests(&self) -> Vec<Value> {
        let lines = self.lines.0.lock().unwrap();
        lines
            .iter()
            .filter(|v| v.get("method").is_some())
            .cloned()
            .collect()
    }

    /// Requests that carried file content (not metadata).
    fn content_gets(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| {
                r["method"] == "GET"
                    && (r["origin"] == "cdn" || r["path"].as_str().unwrap().contains("/resolve/"))
            })
            .collect()
    }
}

impl Drop for LoopbackHub {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh directory for one test: its Hub cache and HF_HOME live inside.
struct Scratch(common::scratch::Scratch);

impl Scratch {
    fn new(name: &str) -> Scratch {
        Scratch(common::scratch::Scratch::new(&format!("pull-{name}")))
    }

    fn cache(&self) -> PathBuf {
        self.0.path().join("hub")
    }

    fn repo_folder(&self) -> PathBuf {
        self.cache()
            .join("models--onnx-community--Florence-2-base-ft")
    }

    /// The only snapshot of REPO.
    fn snapshot(&self) -> PathBuf {
        let commit = std::fs::read_to_string(self.repo_folder().join("refs/main")).unwrap();
        self.repo_folder().join("snapshots").join(commit.trim())
    }

    /// `florenced ARGS` with the Hub settings of this scratch directory.
    fn florenced(&self, endpoint: &str, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_florenced"));
        c.args(args)
            .current_dir(root())
            .env("HF_ENDPOINT", endpoint)
            .env("HF_HUB_CACHE", self.cache())
            .env("HF_HOME", self.0.path().join("hf-home"))
            .env("FLORENCED_THREADS", "1");
        for k in [
            "HF_TOKEN",
            "HF_HUB_OFFLINE",
            "TRANSFORMERS_OFFLINE",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
        ] {
            c.env_remove(k);
        }
        c
    }

    /// Gives `cmd` the same Hub environment as `florenced` gets here.
    fn hub_env(&self, endpoint: &str, cmd: &mut Command) {
        for (k, v) in self.florenced(endpoint, &[]).get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
    }

    fn pull(&self, hub: &LoopbackHub, args: &[&str]) -> Output {
        let mut all = vec!["pull"];
        all.extend(args);
        self.florenced(&hub.endpoint(), &all).output().unwrap()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "pull failed: {}", stderr(&o));
    o
}

fn failed(o: Output) -> String {
    assert!(!o.status.success(), "pull succeeded: {}", stderr(&o));
    stderr(&o)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every file under `dir` (symlinks followed), relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

fn incomplete_files(scratch: &Scratch) -> Vec<PathBuf> {
    let blobs = scratch.repo_folder().join("blobs");
    std::fs::read_dir(&blobs)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with(".incomplete"))
                .collect()
        })
        .unwrap_or_default()
}

/// The caption `florenced run` gives for the scene fixture with the model at `dir`.
fn caption(scratch: &Scratch, endpoint: &str, dir: &str) -> Value {
    let image = root().join("tests/fixtures/images/scene_640x480.png");
    let out = process::succeed(&mut scratch.florenced(
        endpoint,
        &[
            "run",
            "--model-dir",
            dir,
            "--num-beams",
            "1",
            &image.display().to_string(),
        ],
    ));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["result"].clone()
}

#[test]
fn a_pull_fetches_exactly_the_variants_files_into_the_hub_cache() {
    let hub = LoopbackHub::start(&[]);
    let s = Scratch::new("full");
    let out = ok(s.pull(&hub, &["florence-2-base-ft"]));
    let snapshot = s.snapshot();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        snapshot.display().to_string(),
        "stdout is the model directory"
    );
    // Exactly the fp32 files, each the fixture's bytes, each a relative symlink to
    // its blob, LFS blobs named by their sha256 as huggingface_hub names them.
    assert_eq!(files_under(&snapshot), FP32_FILES);
    for f in FP32_FILES {
        let want = std::fs::read(model_dir().join(f)).unwrap();
        assert_eq!(std::fs::read(snapshot.join(f)).unwrap(), want, "{f}");
        let target = std::fs::read_link(snapshot.join(f)).unwrap();
        assert!(
            target.is_relative() && target.starts_with(".."),
            "{f} -> {target:?}"
        );
        if f.ends_with(".onnx") {
            assert_eq!(
                target.file_name().unwrap().to_str().unwrap(),
                sha256_hex(&want),
                "{f}"
            );
        }
    }
    assert!(incomplete_files(&s).is_empty());
    // The token never leaves the Hub: the CDN got no Authorization (none was set here),
    // and every graph came from the CDN after the Hub's redirect.
    let gets = hub.content_gets();
    assert_eq!(
        gets.iter().filter(|r| r["origin"] == "cdn").count(),
        4,
        "{gets:?}"
    );
    assert_eq!(gets.len(), 10, "{gets:?}");

    // The same model runs from the repository id (resolved from the cache) as from
    // the fixture directory.
    let endpoint = hub.endpoint();
    assert_eq!(
        caption(&s, &endpoint, REPO),
        caption(&s, &endpoint, &model_dir().display().to_string())
    );

    // A second pull downloads nothing.
    let before = hub.content_gets().len();
    let again = ok(s.pull(&hub, &["onnx-community/Florence-2-base-ft"]));
    assert_eq!(hub.content_gets().len(), before);
    assert!(
        stderr(&again).contains("0 files downloaded"),
        "{}",
        stderr(&again)
    );
}

#[test]
fn model_dir_is_a_standalone_directory_and_the_daemon_serves_a_repository_id() {
    use std::os::unix::fs::MetadataExt;
    let hub = LoopbackHub::start(&[]);
    let s = Scratch::new("layout");
    let dir = s.0.path().join("models/Florence-2-base-ft");
    let out = ok(s.pull(
        &hub,
        &[
            "florence-2-base-ft",
            "--variant",
            "fp16",
            "--model-dir",
            dir.to_str().unwrap(),
        ],
    ));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        dir.display().to_string()
    );
    let listed = files_under(&dir);
    assert!(
        listed.contains(&"onnx/vision_encoder_fp16.onnx".to_string()),
        "{listed:?}"
    );
    assert!(
        !listed.iter().any(|f| f == "onnx/vision_encoder.onnx"),
        "{listed:?}"
    );
    // Regular files sharing the cache's blobs (same file system: hard links, no copy).
    for f in &listed {
        let m = std::fs::symlink_metadata(dir.join(f)).unwrap();
        assert!(m.file_type().is_file(), "{f} is not a regular file");
        let blob = std::fs::metadata(s.snapshot().join(f)).unwrap();
        assert_eq!((m.dev(), m.ino()), (blob.dev(), blob.ino()), "{f}");
    }
    assert!(
        !s.0.path()
            .join("models")
            .read_dir()
            .unwrap()
            .flatten()
            .any(|e| { e.file_name().to_string_lossy().ends_with(".tmp") })
    );

    // The daemon takes a repository id as model_dir and finds it in the cache.
    let d = Spawn::new()
        .set(&format!("model_dir={REPO}"))
        .set("model_variant=_fp16")
        .env("HF_HUB_CACHE", s.cache().to_str().unwrap())
        .env("HF_HUB_OFFLINE", "1")
        .ready();
    let r = d.post_json(
        "/v1/caption",
        &serde_json::json!({"image": data_uri("image/png", &fixture_png("scene_640x480"))}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // An id that is not in the cache stops start-up with what to do.
    let err = Spawn::new()
        .set("model_dir=someone/not-pulled")
        .env("HF_HUB_CACHE", s.cache().to_str().unwrap())
        .failure();
    assert!(
        err.contains("someone/not-pulled") && err.contains("florenced pull"),
        "{err}"
    );
}

#[test]
fn an_interrupted_transfer_resumes_where_it_stopped() {
    // Within one pull: the connection drops after 1 MB and the pull carries on
    // from there with a Range request.
    let hub = LoopbackHub::start(&["--drop-after", "onnx/vision_encoder.onnx:1000000"]);
    let s = Scratch::new("resume");
    let out = ok(s.pull(&hub, &["florence-2-base-ft"]));
    assert!(
        stderr(&out).contains("resuming at byte 1000000"),
        "{}",
        stderr(&out)
    );
    let sha = sha256_hex(&std::fs::read(model_dir().join("onnx/vision_encoder.onnx")).unwrap());
    let gets: Vec<Value> = hub
        .content_gets()
        .into_iter()
        .filter(|r| r["path"].as_str().unwrap().ends_with(&sha))
        .collect();
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert_eq!(gets[0]["range"], Value::Null);
    assert_eq!(gets[1]["range"], "bytes=1000000-");
    assert_eq!(
        std::fs::read(s.snapshot().join("onnx/vision_encoder.onnx")).unwrap(),
        std::fs::read(model_dir().join("onnx/vision_encoder.onnx")).unwrap()
    );

    // Across runs: the pull is killed mid-file; the next one resumes from the
    // partial file instead of starting over, and nothing half-downloaded is used.
    let hub = LoopbackHub::start(&["--stall-after", "onnx/decoder_model_merged.onnx:1500000"]);
    let s = Scratch::new("resume-kill");
    let mut child = s
        .florenced(&hub.endpoint(), &["pull", "florence-2-base-ft"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    hub.wait_for(|v| v["event"] == "stalled");
    // The bytes the server sent reach the partial file.
    let deadline = Instant::now() + HANG;
    let partial = loop {
        let sized = incomplete_files(&s)
            .into_iter()
            .find(|p| std::fs::metadata(p).is_ok_and(|m| m.len() == 1_500_000));
        if let Some(p) = sized {
            break p;
        }
        assert!(Instant::now() < deadline, "no 1500000-byte partial file");
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let commit = std::fs::read_to_string(s.repo_folder().join("refs/main")).unwrap();
    let pointer = s
        .repo_folder()
        .join("snapshots")
        .join(commit.trim())
        .join("onnx/decoder_model_merged.onnx");
    assert!(
        !pointer.exists(),
        "a half-downloaded graph is in the snapshot"
    );
    assert!(partial.exists());

    ok(s.pull(&hub, &["florence-2-base-ft"]));
    let sha =
        sha256_hex(&std::fs::read(model_dir().join("onnx/decoder_model_merged.onnx")).unwrap());
    let ranges: Vec<Value> = hub
        .content_gets()
        .into_iter()
        .filter(|r| r["path"].as_str().unwrap().ends_with(&sha))
        .map(|r| r["range"].clone())
        .collect();
    assert_eq!(ranges, [Value::Null, "bytes=1500000-".into()]);
    assert_eq!(
        std::fs::read(&pointer).unwrap(),
        std::fs::read(model_dir().join("onnx/decoder_model_merged.onnx")).unwrap()
    );
    assert!(incomplete_files(&s).is_empty());
}

#[test]
fn a_corrupted_file_is_rejected_and_never_placed() {
    let s = Scratch::new("corrupt");
    // An LFS file checked by the sha256 of the Hub's LFS metadata.
    let hub = LoopbackHub::start(&["--corrupt", "onnx/encoder_model.onnx"]);
    let err = failed(s.pull(&hub, &["florence-2-base-ft"]));
    assert!(
        err.contains("onnx/encoder_model.onnx")
            && err.contains("sha256")
            && err.contains("corrupt"),
        "{err}"
    );
    let sha = sha256_hex(&std::fs::read(model_dir().join("onnx/encoder_model.onnx")).unwrap());
    assert!(!s.repo_folder().join("blobs").join(&sha).exists());
    assert!(!s.snapshot().join("onnx/encoder_model.onnx").exists());
    assert!(
        incomplete_files(&s).is_empty(),
        "the corrupt bytes were kept"
    );
    drop(hub);

    // A regular (non-LFS) file checked by its git blob id.
    let hub = LoopbackHub::start(&["--corrupt", "tokenizer.json"]);
    let s2 = Scratch::new("corrupt-git");
    let err = failed(s2.pull(&hub, &["florence-2-base-ft"]));
    assert!(
        err.contains("tokenizer.json") && err.contains("git blob sha1"),
        "{err}"
    );
    assert!(!s2.snapshot().join("tokenizer.json").exists());
    drop(hub);

    // Served correctly, the pull completes and keeps what was already verified.
    let hub = LoopbackHub::start(&[]);
    let out = ok(s.pull(&hub, &["florence-2-base-ft"]));
    assert!(
        stderr(&out).contains("already in the cache"),
        "{}",
        stderr(&out)
    );
    assert_eq!(files_under(&s.snapshot()), FP32_FILES);
}

#[test]
fn offline_mode_uses_only_the_cache_and_no_network_falls_back_to_it() {
    let hub = LoopbackHub::start(&[]);
    let s = Scratch::new("offline");
    let offline = |args: &[&str]| {
        let mut all = vec!["pull"];
        all.extend(args);
        s.florenced(&hub.endpoint(), &all)
            .env("HF_HUB_OFFLINE", "1")
            .output()
            .unwrap()
    };
    let err = failed(offline(&["florence-2-base-ft"]));
    assert!(err.contains("not in the cache"), "{err}");
    assert!(
        hub.requests().is_empty(),
        "offline mode asked the hub: {:?}",
        hub.requests()
    );

    ok(s.pull(&hub, &["florence-2-base-ft"]));
    let seen = hub.requests().len();
    let out = ok(offline(&["florence-2-base-ft"]));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        s.snapshot().display().to_string()
    );
    let err = failed(offline(&["florence-2-base-ft", "--variant", "fp16"]));
    assert!(err.contains("onnx/vision_encoder_fp16.onnx"), "{err}");
    ok(s.florenced(
        &hub.endpoint(),
        &["pull", "--offline", "florence-2-base-ft"],
    )
    .output()
    .unwrap());
    assert_eq!(hub.requests().len(), seen, "offline mode asked the hub");

    // No network (nothing listens at the endpoint): the cached copy serves, and
    // without one the error says the Hub cannot be reached.
    // Port 1 on loopback: privileged, nothing of ours listens there, so connecting is refused.
    let closed = "http://127.0.0.1:1".to_string();
    let out = s
        .florenced(&closed, &["pull", "florence-2-base-ft"])
        .output()
        .unwrap();
    let out = ok(out);
    assert!(
        stderr(&out).contains("using the copy in the cache"),
        "{}",
        stderr(&out)
    );
    let empty = Scratch::new("offline-empty");
    let err = failed(
        empty
            .florenced(&closed, &["pull", "florence-2-base-ft"])
            .output()
            .unwrap(),
    );
    assert!(err.contains("cannot reach the Hugging Face Hub"), "{err}");
}

#[test]
fn unknown_repositories_variants_and_revisions_are_clear_errors() {
    let hub = LoopbackHub::start(&[]);
    let s = Scratch::new("errors");
    let err = failed(s.pull(&hub, &["nobody/nothing"]));
    assert!(
        err.contains("repository nobody/nothing not found") && err.contains("HF_TOKEN"),
        "{err}"
    );
    let err = failed(s.pull(&hub, &["florence-2-base-ft", "--variant", "q4"]));
    assert!(
        err.contains("has no _q4 variant") && err.contains("variants there: fp32, _fp16"),
        "{err}"
    );
    let err = failed(s.pull(&hub, &["florence-2-base-ft", "--variant", "fp8"]));
    assert!(err.contains("unknown variant \"fp8\""), "{err}");
    let err = failed(s.pull(&hub, &["florence2"]));
    assert!(
        err.contains("florence-2-base-ft") && err.contains("owner/name"),
        "{err}"
    );
    let err = failed(s.pull(&hub, &["florence-2-base-ft", "--revision", "v9"]));
    assert!(err.contains("no revision \"v9\""), "{err}");
    assert!(hub.content_gets().is_empty());

    // A private repository: not found without a token, pulled with HF_TOKEN, whose
    // token goes to the Hub and never to the CDN.
    let err = failed(s.pull(&hub, &["test/private"]));
    assert!(err.contains("repository test/private not found"), "{err}");
    let out = s
        .florenced(&hub.endpoint(), &["pull", "test/private"])
        .env("HF_TOKEN", TOKEN)
        .output()
        .unwrap();
    ok(out);
    let reqs = hub.requests();
    assert!(reqs.iter().any(|r| r["origin"] == "cdn"));
    assert!(
        reqs.iter()
            .filter(|r| r["origin"] == "cdn")
            .all(|r| r["auth"] == false)
    );
    assert!(reqs.iter().filter(|r| r["origin"] == "hub" && r["path"].as_str().unwrap().contains("test/private")).any(|r| r["auth"] == true));
}

#[test]
fn a_full_disk_is_an_error_before_or_while_writing() {
    // A file larger than the free space is refused before a byte is written.
    let hub = LoopbackHub::start(&["--claim-size", "onnx/vision_encoder.onnx:1125899906842624"]);
    let s = Scratch::new("disk");
    let err = failed(s.pull(&hub, &["florence-2-base-ft"]));
    assert!(
        err.contains("disk full") && err.contains("onnx/vision_encoder.onnx needs"),
        "{err}"
    );
    assert!(
        incomplete_files(&s).is_empty(),
        "{:?}",
        incomplete_files(&s)
    );
    drop(hub);

    // The kernel's "no space left" while writing (the partial file is /dev/full).
    let hub = LoopbackHub::start(&[]);
    let s = Scratch::new("disk-enospc");
    let sha = sha256_hex(&std::fs::read(model_dir().join("onnx/embed_tokens.onnx")).unwrap());
    let blobs = s.repo_folder().join("blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    std::os::unix::fs::symlink("/dev/full", blobs.join(format!("{sha}.incomplete"))).unwrap();
    let err = failed(s.pull(&hub, &["florence-2-base-ft"]));
    assert!(err.contains("disk full") && err.contains(&sha), "{err}");
    assert!(!blobs.join(&sha).exists());
}

#[test]
fn progress_is_plain_lines_off_a_terminal_and_a_bar_on_one() {
    let hub = LoopbackHub::start(&[]);
    let s = Scratch::new("progress");
    let plain = stderr(&ok(s.pull(&hub, &["florence-2-base-ft"])));
    assert!(
        plain.contains("florenced pull: downloading onnx/vision_encoder.onnx (2.89 MiB)"),
        "{plain}"
    );
    assert!(
        !plain.contains('\r') && !plain.contains('\u{1b}'),
        "{plain:?}"
    );

    // On a terminal (script(1) gives the pull a pseudo-terminal): an indicatif bar.
    let s = Scratch::new("progress-tty");
    let cmd = format!(
        "{} pull florence-2-base-ft",
        env!("CARGO_BIN_EXE_florenced")
    );
    let mut script = Command::new("script");
    script.args(["-qec", &cmd, "/dev/null"]);
    s.hub_env(&hub.endpoint(), &mut script);
    let tty = process::succeed(script.current_dir(root()).stdin(Stdio::null()));
    let screen = String::from_utf8_lossy(&tty.stdout);
    assert!(
        screen.contains("onnx/vision_encoder.onnx") && screen.contains('\r'),
        "{screen:?}"
    );
    assert!(!screen.contains("downloading onnx/"), "{screen:?}");
}

/// A tool installed by scripts/setup.sh into .test-venv/.
fn venv_python() -> PathBuf {
    let p = root().join(".test-venv/bin/python");
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup.sh (it installs the pinned Python test tools)",
        p.display()
    );
    p
}

/// Runs a Python snippet with huggingface_hub against the loopback hub and the scratch cache.
fn python(s: &Scratch, hub: &LoopbackHub, code: &str) -> String {
    let mut py = Command::new(venv_python());
    s.hub_env(&hub.endpoint(), &mut py);
    py.env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        .args(["-c", code]);
    let out = process::succeed(&mut py);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn the_cache_is_shared_with_python_huggingface_hub_both_ways() {
    let hub = LoopbackHub::start(&[]);
    let patterns = r#"["*.json", "onnx/*_fp16.onnx"]"#;

    // Python pulls; florenced finds everything and downloads nothing.
    let s = Scratch::new("py-to-rust");
    let path = python(
        &s,
        &hub,
        &format!(
            "from huggingface_hub import snapshot_download\nprint(snapshot_download('{REPO}', allow_patterns={patterns}))"
        ),
    );
    assert_eq!(PathBuf::from(&path), s.snapshot());
    let before = hub.content_gets().len();
    let out = ok(s.pull(&hub, &["florence-2-base-ft", "--variant", "fp16"]));
    assert_eq!(
        hub.content_gets().len(),
        before,
        "florenced downloaded again"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), path);

    // florenced pulls; Python finds everything (online without downloading, and
    // offline), and its own checksum verification agrees with the cache.
    let s = Scratch::new("rust-to-py");
    ok(s.pull(&hub, &["florence-2-base-ft", "--variant", "fp16"]));
    let before = hub.content_gets().len();
    let code = format!(
        r#"
import json
from huggingface_hub import snapshot_download, hf_hub_download, HfApi
online = snapshot_download('{REPO}', allow_patterns={patterns})
offline = hf_hub_download('{REPO}', 'onnx/decoder_model_merged_fp16.onnx', local_files_only=True)
v = HfApi().verify_repo_checksums('{REPO}', cache_dir=r'{cache}')
print(json.dumps({{"online": online, "offline": offline, "checked": v.checked_count,
                  "mismatches": [str(m) for m in v.mismatches], "extra": list(v.extra_paths)}}))
"#,
        cache = s.cache().display()
    );
    let got: Value = serde_json::from_str(&python(&s, &hub, &code)).unwrap();
    assert_eq!(hub.content_gets().len(), before, "Python downloaded again");
    assert_eq!(got["online"], s.snapshot().display().to_string());
    assert_eq!(
        std::fs::read(got["offline"].as_str().unwrap()).unwrap(),
        std::fs::read(model_dir().join("onnx/decoder_model_merged_fp16.onnx")).unwrap()
    );
    assert_eq!(got["checked"], 10, "{got}");
    assert_eq!(got["mismatches"], serde_json::json!([]), "{got}");
    assert_eq!(got["extra"], serde_json::json!([]), "{got}");
}

#[test]
fn the_installers_pull_step_lays_out_the_configured_model_directory() {
    // systemd/install.sh --model runs systemd/pull-model.sh as root on the real
    // /var/lib; here it runs on a scratch tree (install.sh itself needs root and systemd).
    let hub = LoopbackHub::start(&[]);
    let s = Scratch::new("install");
    let state = s.0.path().join("var/lib/hailo-florence");
    let run = || {
        let mut c = Command::new(root().join("systemd/pull-model.sh"));
        s.hub_env(&hub.endpoint(), &mut c);
        c.arg("--binary")
            .arg(env!("CARGO_BIN_EXE_florenced"))
            .arg("--models")
            .arg(state.join("models"))
            .arg("--cache")
            .arg(state.join("hub"))
            .args(["florence-2-base-ft", "fp16"]);
        process::succeed(&mut c)
    };
    let out = run();
    let dir = state.join("models/Florence-2-base-ft");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        dir.display().to_string()
    );
    let listed = files_under(&dir);
    assert!(
        listed.contains(&"onnx/decoder_model_merged_fp16.onnx".to_string()),
        "{listed:?}"
    );
    assert!(
        state
            .join("hub/models--onnx-community--Florence-2-base-ft/refs/main")
            .is_file()
    );
    // The default configuration points at the directory the short name lands in.
    let yaml = std::fs::read_to_string(root().join("systemd/hailo-florence.yaml")).unwrap();
    assert!(
        yaml.lines()
            .any(|l| l.starts_with("model_dir: /var/lib/hailo-florence/models/Florence-2-base-ft")),
        "{yaml}"
    );
    // Running it again (an upgrade) downloads nothing.
    let before = hub.content_gets().len();
    run();
    assert_eq!(hub.content_gets().len(), before);
}

/// The README's operations commands that fetch a model: `sudo
/// systemd/install.sh --model ...` (staged with DESTDIR, the debug build) and
/// the pull the Debian package's postinst prints, both from the loopback Hub.
#[test]
fn the_readmes_service_install_and_package_pull_fetch_the_model() {
    let hub = LoopbackHub::start(&[]);
    let s = Scratch::new("readme-ops");
    let line = installed::readme_command("sudo systemd/install.sh --model");
    let args: Vec<&str> = line.split_whitespace().skip(2).collect();
    let dest = s.0.path().join("root");
    let built = installed::artefacts();
    let mut c = Command::new("bash");
    s.hub_env(&hub.endpoint(), &mut c);
    c.arg(root().join("systemd/install.sh"))
        .env("DESTDIR", &dest)
        .args(&args)
        .arg("--binary")
        .arg(built.join("florenced"))
        .arg("--plugin")
        .arg(built.join("libgstflorence.so"))
        .arg("--ort-library")
        .arg(root().join(".ort/lib/libonnxruntime.so"));
    process::succeed(&mut c);
    let config = std::fs::read_to_string(dest.join("etc/hailo/hailo-florence.yaml")).unwrap();
    let model = "/var/lib/hailo-florence/models/Florence-2-base-ft";
    assert!(
        config.contains(&format!("\nmodel_dir: {model}\n")),
        "{config}"
    );
    assert!(
        dest.join(
            "var/lib/hailo-florence/hub/models--onnx-community--Florence-2-base-ft/refs/main"
        )
        .is_file()
    );
    // The installed florenced serves what was pulled, with the root's ONNX Runtime.
    let model_in_root = dest.join(model.trim_start_matches('/'));
    let out = process::succeed(
        Command::new(dest.join("usr/local/bin/florenced"))
            .args(["run", "--threads", "1", "--num-beams", "1", "--model-dir"])
            .arg(&model_in_root)
            .arg(root().join("tests/fixtures/images/scene_640x480.png"))
            .env_remove("ORT_DYLIB_PATH"),
    );
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["task"], "<CAPTION>");

    // After the package: the pull its postinst prints, as the README shows it.
    let line =
        installed::readme_command("sudo HF_HUB_CACHE=/var/lib/hailo-florence/hub florenced pull");
    let state = s.0.path().join("package-state");
    let command = line
        .trim_start_matches("sudo ")
        .replace("/var/lib/hailo-florence", &state.display().to_string());
    let mut c = Command::new("sh");
    s.hub_env(&hub.endpoint(), &mut c);
    let path = std::env::var("PATH").unwrap_or_default();
    c.arg("-c")
        .arg(&command)
        .env("PATH", format!("{}:{path}", built.display()));
    let out = process::succeed(&mut c);
    let dir = state.join("models/Florence-2-base-ft");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        dir.display().to_string()
    );
    assert!(dir.join("onnx/decoder_model_merged.onnx").is_file());
}
