//! The real florenced binary on loopback with an ephemeral port, and a small
//! HTTP/1.1 client that can also send what well-behaved clients never do.
#![allow(dead_code)]
// Each test binary uses some of the shared helpers.
#![allow(unused_imports)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use florence_test_support::{
    built, fixture_png, model_copies, process, root, scratch, tiny_model_dir as model_dir,
};
pub mod drawn;
pub mod notify;

/// The benchmark's Python (its venv made by tools/bench/make_venv.sh, which
/// scripts/setup.sh runs; a no-op when the venv is there).
pub fn bench_python() -> PathBuf {
    let venv = root().join(".venv-bench");
    process::succeed(
        Command::new("bash")
            .current_dir(root())
            .arg("tools/bench/make_venv.sh")
            .arg(&venv)
            .arg("tools/bench/requirements-ort.txt"),
    );
    venv.join("bin/python")
}

/// The tiny model on one ONNX Runtime thread, as the daemon's tests expect its answers.
pub fn tiny_engine() -> gstflorence::engine::Florence {
    gstflorence::engine::Florence::load(
        &model_dir(),
        gstflorence::engine::SessionOptions {
            intra_threads: 1,
            ..Default::default()
        },
    )
    .unwrap()
}

pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
    pub logs: Arc<Mutex<Vec<String>>>,
}

pub struct Spawn {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Spawn {
    /// The tiny model, an ephemeral port, one ORT thread, JSON logs.
    pub fn new() -> Spawn {
        Spawn {
            args: vec![
                "--model-dir".into(),
                model_dir().display().to_string(),
                "--port".into(),
                "0".into(),
                "--threads".into(),
                "1".into(),
                "--log-format".into(),
                "json".into(),
            ],
            env: Vec::new(),
        }
    }

    /// The daemon reading `config` (so that a reload reads it again), JSON logs.
    pub fn with_config(config: &Path) -> Spawn {
        Spawn {
            args: [
                "--config",
                &config.display().to_string(),
                "--port",
                "0",
                "--threads",
                "1",
                "--log-format",
                "json",
            ]
            .map(String::from)
            .to_vec(),
            env: Vec::new(),
        }
    }

    pub fn set(mut self, kv: &str) -> Spawn {
        self.args.push("--set".into());
        self.args.push(kv.into());
        self
    }

    /// Serves the model directory `dir` instead of the tiny one.
    pub fn model_dir(self, dir: &Path) -> Spawn {
        self.set(&format!("model_dir={}", dir.display()))
    }

    /// Runs the daemon expecting start-up to fail; returns its stderr.
    pub fn failure(&self) -> String {
        let out = self.command().output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "started: {err}");
        err
    }

    pub fn env(mut self, k: &str, v: &str) -> Spawn {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_florenced"));
        // Empty: no configuration file unless `--config` names one, so that an
        // installed service's /etc/hailo/hailo-florence.yaml never leaks in.
        c.args(&self.args)
            .env(florenced::config::CONFIG_FILE_ENV, "")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            // No HailoRT unless a test names one: the machine's never leaks in.
            .env("FLORENCE_HAILORT_LIBRARY", "/nonexistent/libhailort.so")
            .current_dir(root());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Starts the daemon and returns once it listens (not necessarily loaded).
    pub fn start(&self) -> Daemon {
        self.start_command(self.command())
    }

    /// Starts `command` (this Spawn's, adjusted) like `start`.
    pub fn start_command(&self, mut command: Command) -> Daemon {
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                        && let Some(a) = v["address"].as_str()
                        && v["message"]
                            .as_str()
                            .is_some_and(|m| m.starts_with("listening"))
                    {
                        let _ = tx.send(a.parse::<SocketAddr>().unwrap());
                    }
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!("florenced did not listen; logs: {:?}", logs.lock().unwrap())
            });
        Daemon { child, addr, logs }
    }

    /// Starts the daemon and waits until /health is 200.
    pub fn ready(&self) -> Daemon {
        let d = self.start();
        d.wait_healthy();
        d
    }
}

impl Daemon {
    pub fn wait_healthy(&self) {
        let start = Instant::now();
        loop {
            if let Ok(r) = try_request(self.addr, "GET", "/health", &[], b"")
                && r.status == 200
            {
                return;
            }
            // A daemon that gave up never becomes healthy: say so now.
            let logs = self.logs.lock().unwrap();
            assert!(
                !logs.iter().any(|l| l.starts_with("florenced: ")),
                "florenced exited; logs: {logs:?}"
            );
            drop(logs);
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "not healthy after 60 s; logs: {:?}",
                self.logs.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn get(&self, path: &str) -> Response {
        request(self.addr, "GET", path, &[], b"")
    }

    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> Response {
        request(
            self.addr,
            "POST",
            path,
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        )
    }

    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until `n` log lines have a message containing `what`; returns the n-th.
    pub fn wait_log(&self, what: &str, n: usize) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let found: Vec<_> = self
                .log_lines()
                .into_iter()
                .filter(|l| l["message"].as_str().is_some_and(|m| m.contains(what)))
                .collect();
            if found.len() >= n {
                return found[n - 1].clone();
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no {n}x '{what}' in the log: {:#?}",
                self.log_lines()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits for the process to exit (SIGKILL after `limit`).
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!("florenced did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the contract's error shape and returns the error code.
    pub fn error_code(&self, status: u16) -> String {
        assert_eq!(self.status, status, "body: {}", self.text());
        let j = self.json();
        assert_eq!(j["status"], status, "{j}");
        assert!(j["message"].as_str().is_some_and(|m| !m.is_empty()), "{j}");
        j["error"].as_str().unwrap().to_owned()
    }
}

/// POSTs a JSON body to /v1/caption on another thread.
pub fn post_caption_async(addr: SocketAddr, body: String) -> std::thread::JoinHandle<Response> {
    std::thread::spawn(move || request(addr, "POST", "/v1/caption", JSON, body.as_bytes()))
}

/// [`post_caption_async`] for a request whose connection may be cut (a
/// daemon killed mid-request): the I/O error instead of a panic.
pub fn try_post_caption_async(
    addr: SocketAddr,
    body: String,
) -> std::thread::JoinHandle<std::io::Result<Response>> {
    std::thread::spawn(move || try_request(addr, "POST", "/v1/caption", JSON, body.as_bytes()))
}

const JSON: &[(&str, &str)] = &[("content-type", "application/json")];

pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    try_request(addr, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

pub fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    // The server may answer (413) before reading a large body; a reset then is fine.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> std::io::Result<Response> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(p) = rest.windows(2).position(|w| w == b"\r\n") {
            let n =
                usize::from_str_radix(std::str::from_utf8(&rest[..p]).unwrap_or("0").trim(), 16)
                    .unwrap_or(0);
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[p + 2..p + 2 + n]);
            rest = &rest[p + 2 + n + 2..];
        }
        body = out;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn data_uri(mime: &str, bytes: &[u8]) -> String {
    format!("data:{mime};base64,{}", b64(bytes))
}

/// Encodes an RGB image as JPEG (quality 90) or PNG.
pub fn encode(w: u32, h: u32, rgb: Vec<u8>, format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_raw(w, h, rgb).unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    match format {
        image::ImageFormat::Jpeg => {
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
                .encode_image(&img)
                .unwrap();
        }
        f => img.write_to(&mut out, f).unwrap(),
    }
    out.into_inner()
}

/// A 640x480 scene: two shapes on a background, varied by `seed`.
pub fn scene(w: u32, h: u32, seed: u32) -> Vec<u8> {
    let palette = [
        [220u8, 40, 40],
        [40, 160, 60],
        [40, 70, 220],
        [240, 200, 40],
        [150, 60, 190],
        [250, 140, 30],
        [245, 245, 245],
        [30, 30, 30],
    ];
    let bg = palette[(seed % 8) as usize];
    let fg = palette[((seed / 8 + seed + 3) % 8) as usize];
    let (cx, cy) = (
        (w / 4 + (seed * 37) % (w / 2).max(1)) as i64,
        (h / 4 + (seed * 53) % (h / 2).max(1)) as i64,
    );
    let r = (w.min(h) / 5).max(2) as i64;
    let mut data = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h as i64 {
        for x in 0..w as i64 {
            let inside = if seed.is_multiple_of(2) {
                (x - cx).pow(2) + (y - cy).pow(2) <= r * r
            } else {
                (x - cx).abs() <= r && (y - cy).abs() <= r
            };
            data.extend_from_slice(if inside { &fg } else { &bg });
        }
    }
    data
}

/// A PNG whose header claims `w` x `h` (valid signature, IHDR and CRC, no pixel data).
pub fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(&ihdr);
    out.extend_from_slice(&crc32(&ihdr).to_be_bytes());
    let idat = b"IDAT\x78\x9c\x03\x00\x00\x00\x00\x01";
    out.extend_from_slice(&((idat.len() - 4) as u32).to_be_bytes());
    out.extend_from_slice(idat);
    out.extend_from_slice(&crc32(idat).to_be_bytes());
    out
}
