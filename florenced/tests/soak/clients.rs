//! The soak's clients, each a thread looping until told to stop: valid
//! requests checked against their expected answer, invalid ones checked
//! against their documented error, slowloris heads and slow bodies that the
//! daemon must cut, clients that vanish mid-body or while their answer is
//! computed, and a health check.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cases::{Invalid, Valid, comparable};
use crate::common::{Response, data_uri, fixture_png, try_request};
use crate::tally::Tally;

/// How long a slow client may go on trickling before the daemon is deemed not
/// to cut it: far beyond the soak's timeouts, a hang guard only.
const NOT_CUT_AFTER: Duration = Duration::from_secs(60);
/// How often a slow client sends its next byte.
const TRICKLE_EVERY: Duration = Duration::from_millis(200);

/// What every client shares.
#[derive(Clone)]
pub struct Shared {
    pub addr: SocketAddr,
    pub valid: Arc<Vec<Valid>>,
    pub invalid: Arc<Vec<Invalid>>,
    pub tally: Arc<Tally>,
    pub stop: Arc<AtomicBool>,
}

/// How many clients of each kind run at once.
pub struct Mix {
    pub valid: usize,
    pub invalid: usize,
    pub slow_heads: usize,
    pub slow_bodies: usize,
    pub vanishing: usize,
}

/// A small deterministic generator (xorshift64*): which request a client sends
/// next and when a vanishing client leaves; a seed per thread keeps runs alike.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n.max(1)
    }
}

pub fn spawn(shared: &Shared, mix: &Mix) -> Vec<std::thread::JoinHandle<()>> {
    let mut threads = Vec::new();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut start = |kind: fn(&Shared, &mut Rng)| {
        let s = shared.clone();
        seed = seed.wrapping_add(0x9E37_79B9);
        let mut rng = Rng(seed);
        threads.push(std::thread::spawn(move || {
            while !s.stop.load(Ordering::SeqCst) {
                kind(&s, &mut rng);
            }
        }));
    };
    for _ in 0..mix.valid {
        start(valid_client);
    }
    for _ in 0..mix.invalid {
        start(invalid_client);
    }
    for _ in 0..mix.slow_heads {
        start(slow_head_client);
    }
    for _ in 0..mix.slow_bodies {
        start(slow_body_client);
    }
    for _ in 0..mix.vanishing {
        start(vanishing_client);
    }
    start(health_client);
    threads
}

/// A documented 503: `overloaded` or `model_not_ready` with Retry-After.
fn documented_503(r: &Response) -> Option<String> {
    let code = serde_json::from_slice::<serde_json::Value>(&r.body)
        .ok()?
        .get("error")?
        .as_str()?
        .to_owned();
    (matches!(code.as_str(), "overloaded" | "model_not_ready") && r.header("retry-after").is_some())
        .then_some(code)
}

fn valid_client(s: &Shared, rng: &mut Rng) {
    let case = &s.valid[rng.below(s.valid.len())];
    let sent = Instant::now();
    match case.request.send(s.addr) {
        Err(e) => s
            .tally
            .fail("valid: lost", format!("{}: {e}", case.request.name)),
        Ok(r) if r.status == 200 => {
            let got = serde_json::from_slice(&r.body).map(|v| comparable(&v));
            match got {
                Ok(v) if v == case.expected => s.tally.answered(sent.elapsed()),
                _ => s.tally.fail(
                    "valid: wrong answer",
                    format!(
                        "{}: expected {} got {}",
                        case.request.name,
                        case.expected,
                        r.text()
                    ),
                ),
            }
        }
        Ok(r) if r.status == 503 => match documented_503(&r) {
            Some(code) => s.tally.count(&format!("valid: 503 {code}")),
            None => s.tally.fail(
                "valid: undocumented 503",
                format!("{}: {:?} {}", case.request.name, r.headers, r.text()),
            ),
        },
        Ok(r) => s.tally.fail(
            "valid: unexpected status",
            format!("{}: {} {}", case.request.name, r.status, r.text()),
        ),
    }
}

fn invalid_client(s: &Shared, rng: &mut Rng) {
    // One in nine: a body far over the limit, declared and never sent.
    if rng.below(s.invalid.len() + 1) == s.invalid.len() {
        return huge_declared_body(s);
    }
    let case = &s.invalid[rng.below(s.invalid.len())];
    let name = &case.request.name;
    match case.request.send(s.addr) {
        Ok(r)
            if r.status == case.status
                && serde_json::from_slice::<serde_json::Value>(&r.body)
                    .is_ok_and(|j| j["error"] == case.code && j["status"] == case.status) =>
        {
            s.tally.count(&format!("invalid: {name}: {}", case.status))
        }
        Ok(r) => s.tally.fail(
            "invalid: undocumented answer",
            format!(
                "{name}: expected {} {}, got {} {}",
                case.status,
                case.code,
                r.status,
                r.text()
            ),
        ),
        Err(e) => s.tally.fail("invalid: no answer", format!("{name}: {e}")),
    }
}

fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let c = TcpStream::connect(addr)?;
    c.set_read_timeout(Some(NOT_CUT_AFTER))?;
    Ok(c)
}

/// 200 MiB declared: refused with 413 from the head, before any body is read.
fn huge_declared_body(s: &Shared) {
    let head = "POST /v1/caption HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 209715200\r\nConnection: close\r\n\r\n";
    let got = connect(s.addr).and_then(|mut c| {
        c.write_all(head.as_bytes())?;
        let mut raw = Vec::new();
        c.read_to_end(&mut raw)?;
        Ok(raw)
    });
    match got.map(|raw| status_and_code(&raw)) {
        Ok(Some((413, code))) if code == "image_too_large" => {
            s.tally.count("invalid: 200 MiB declared body: 413")
        }
        other => s
            .tally
            .fail("invalid: huge body not refused", format!("{other:?}")),
    }
}

/// The final status and error code of a raw response.
fn status_and_code(raw: &[u8]) -> Option<(u16, String)> {
    let text = String::from_utf8_lossy(raw);
    // After any interim 1xx response.
    let last = text.rfind("HTTP/1.1 ")?;
    let status = text[last + 9..].get(..3)?.parse().ok()?;
    let body_at = text[last..].find("\r\n\r\n")? + last + 4;
    let code = serde_json::from_str::<serde_json::Value>(&text[body_at..])
        .ok()
        .and_then(|j| j["error"].as_str().map(str::to_owned))
        .unwrap_or_default();
    Some((status, code))
}

/// Sends `bytes` one at a time, every [`TRICKLE_EVERY`], cycling, until the
/// daemon closes the connection or answers; returns what it sent back, or
/// None if it never cut the client.
fn trickle(c: &mut TcpStream, bytes: &[u8]) -> Option<Vec<u8>> {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    c.set_nonblocking(true).ok()?;
    for b in bytes.iter().cycle() {
        // Whatever the daemon sent first, so that a reset cannot discard it.
        loop {
            match c.read(&mut buf) {
                Ok(0) => return Some(got),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => return Some(got),
            }
        }
        if !got.is_empty() {
            // An answer is coming: read it to the end.
            c.set_nonblocking(false).ok()?;
            let _ = c.read_to_end(&mut got);
            return Some(got);
        }
        if c.write_all(&[*b]).is_err() {
            let _ = c.set_nonblocking(false);
            let _ = c.read_to_end(&mut got);
            return Some(got);
        }
        if started.elapsed() > NOT_CUT_AFTER {
            return None;
        }
        std::thread::sleep(TRICKLE_EVERY);
    }
    None
}

/// Slowloris: a request head that never ends must be cut by the header timeout.
fn slow_head_client(s: &Shared, _: &mut Rng) {
    let Ok(mut c) = connect(s.addr) else {
        return s.tally.fail("slow head: cannot connect", String::new());
    };
    if c.write_all(b"POST /v1/caption HTTP/1.1\r\nHost: localhost\r\nX-Pad: ")
        .is_err()
    {
        return s.tally.fail("slow head: closed at once", String::new());
    }
    match trickle(&mut c, b"abcdefgh") {
        Some(_) => s.tally.count("slow head: cut"),
        None => s
            .tally
            .fail("slow head: not cut", format!("after {NOT_CUT_AFTER:?}")),
    }
}

/// A body that trickles in must be answered 408 `body_timeout`.
fn slow_body_client(s: &Shared, _: &mut Rng) {
    let Ok(mut c) = connect(s.addr) else {
        return s.tally.fail("slow body: cannot connect", String::new());
    };
    let head = "POST /v1/caption HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"image\": \"";
    if c.write_all(head.as_bytes()).is_err() {
        return s.tally.fail("slow body: closed at once", String::new());
    }
    match trickle(&mut c, b"QUFB").map(|raw| status_and_code(&raw)) {
        Some(Some((408, code))) if code == "body_timeout" => s.tally.count("slow body: 408"),
        // Cut, but the answer was lost to a reset racing a trickled byte.
        Some(None) => s.tally.count("slow body: cut without an answer read"),
        Some(other) => s
            .tally
            .fail("slow body: undocumented answer", format!("{other:?}")),
        None => s
            .tally
            .fail("slow body: not cut", format!("after {NOT_CUT_AFTER:?}")),
    }
}

/// A client that leaves: halfway through its body, or while its answer is
/// computed (a long generation), after a short random wait.
fn vanishing_client(s: &Shared, rng: &mut Rng) {
    let body = json!({"image": data_uri("image/png", &fixture_png("scene_1024x576")),
        "max_length": 60, "min_length": 60, "num_beams": 3})
    .to_string();
    let head = format!(
        "POST /v1/caption HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let Ok(mut c) = connect(s.addr) else {
        return s.tally.fail("vanishing: cannot connect", String::new());
    };
    let mid_body = rng.below(2) == 0;
    let sent = if mid_body {
        &body.as_bytes()[..body.len() / 2]
    } else {
        body.as_bytes()
    };
    if c.write_all(head.as_bytes())
        .and_then(|()| c.write_all(sent))
        .is_err()
    {
        return s.tally.fail("vanishing: refused", String::new());
    }
    std::thread::sleep(Duration::from_millis(rng.below(400) as u64));
    drop(c);
    s.tally.count(if mid_body {
        "vanishing: left mid-body"
    } else {
        "vanishing: left awaiting its answer"
    });
}

/// /health stays 200 throughout.
fn health_client(s: &Shared, _: &mut Rng) {
    match try_request(s.addr, "GET", "/health", &[], b"") {
        Ok(r) if r.status == 200 => s.tally.count("health: 200"),
        Ok(r) => s
            .tally
            .fail("health: not 200", format!("{} {}", r.status, r.text())),
        Err(e) => s.tally.fail("health: no answer", e.to_string()),
    }
    std::thread::sleep(Duration::from_millis(500));
}
