//! Hostile and unusual clients against the real daemon on loopback: slow or
//! idle sockets are closed in bounded time, more sockets than the daemon can
//! hold do not starve /health, bodies in flight are bounded, over-limit
//! bodies are refused from their header, and a client that half-closes after
//! its request still gets its answer.
//!
//! Every wait is for an event (a close, an answer, a gauge); the durations
//! below are hang guards, never expectations of speed.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const GUARD: Duration = Duration::from_secs(60);

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(GUARD)).unwrap();
    s
}

/// Reads until the server closes the connection; the bytes it sent, or None
/// if it was still open when the hang guard ran out.
fn until_closed(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None;
            }
            Err(_) => return Some(got),
        }
    }
}

/// Waits until the server has closed at least `n` of `socks`.
fn wait_closed(socks: &mut [TcpStream], n: usize) {
    let start = Instant::now();
    let mut closed = vec![false; socks.len()];
    let mut buf = [0u8; 4096];
    for s in socks.iter() {
        s.set_nonblocking(true).unwrap();
    }
    while closed.iter().filter(|c| **c).count() < n {
        for (s, c) in socks.iter_mut().zip(closed.iter_mut()) {
            while !*c {
                match s.read(&mut buf) {
                    Ok(0) => *c = true,
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => *c = true,
                }
            }
        }
        let count = closed.iter().filter(|c| **c).count();
        assert!(
            start.elapsed() < GUARD,
            "{count} of {} closed, expected {n}",
            socks.len()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The final response in `raw` (after any 1xx interim responses): status and body.
fn final_response(raw: &[u8]) -> (u16, Vec<String>, Vec<u8>) {
    let mut rest = raw;
    loop {
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(raw)));
        let head = String::from_utf8_lossy(&rest[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap();
        let headers: Vec<String> = lines.map(|l| l.to_ascii_lowercase()).collect();
        rest = &rest[end + 4..];
        if status >= 200 {
            return (status, headers, rest.to_vec());
        }
    }
}

fn caption_body() -> String {
    json!({"image": b64(&fixture_png("scene_300x200")), "max_length": 5}).to_string()
}

fn post_head(path: &str, content_type: &str, length: usize, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\n{extra}\r\n"
    )
}

/// Waits until the JSON metrics satisfy `ok`.
fn wait_metrics(d: &Daemon, what: &str, ok: impl Fn(&serde_json::Value) -> bool) {
    let start = Instant::now();
    loop {
        let m = d.get("/metrics").json();
        if ok(&m) {
            return;
        }
        assert!(start.elapsed() < GUARD, "{what}: {m}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn slow_and_idle_connections_are_closed_while_others_are_served() {
    let d = Spawn::new()
        .set("http.header_read_timeout_s=2")
        .set("http.keep_alive_timeout_s=1")
        .ready();
    // Connected, never a byte.
    let mut silent = connect(d.addr);
    // Slowloris: a request head that never ends, one byte at a time.
    let mut slow = connect(d.addr);
    slow.write_all(b"POST /v1/caption HTTP/1.1\r\nHost: localhost\r\n")
        .unwrap();
    let mut trickle = slow.try_clone().unwrap();
    let trickler = std::thread::spawn(move || {
        for b in b"X-Padding: ".iter().chain([b'a'; 100_000].iter()).cycle() {
            if trickle.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    // Kept alive after one answer, then idle.
    let mut kept = connect(d.addr);
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();

    // Normal clients are served meanwhile.
    assert_eq!(d.get("/health").status, 200);
    let r = d.post_json(
        "/v1/caption",
        &serde_json::from_str(&caption_body()).unwrap(),
    );
    assert_eq!(r.status, 200, "{}", r.text());

    let answered = until_closed(&mut kept).expect("the idle kept-alive connection stayed open");
    assert_eq!(final_response(&answered).0, 200);
    assert!(
        until_closed(&mut silent).is_some(),
        "the silent connection stayed open"
    );
    assert!(
        until_closed(&mut slow).is_some(),
        "the slowloris connection stayed open"
    );
    trickler.join().unwrap();
    assert_eq!(d.get("/health").status, 200);
}

#[test]
fn a_body_that_does_not_arrive_in_time_is_answered_408() {
    let d = Spawn::new().set("http.body_read_timeout_s=1").ready();
    let mut s = connect(d.addr);
    s.write_all(post_head("/v1/caption", "application/json", 1000, "").as_bytes())
        .unwrap();
    s.write_all(b"{\"image\": \"").unwrap();
    let raw = until_closed(&mut s).expect("the slow body's connection stayed open");
    let (status, _, body) = final_response(&raw);
    assert_eq!(status, 408, "{}", String::from_utf8_lossy(&body));
    let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(j["error"], "body_timeout");
    wait_metrics(&d, "the body's reservation is returned", |m| {
        m["body_bytes_in_flight"] == 0
    });
}

/// Idle sockets beyond `http.max_connections`: the ones idle longest make
/// room, so /health is answered while they are all held (with timeouts far
/// beyond the hang guard, only that can free a slot).
#[test]
fn more_sockets_than_the_connection_limit_do_not_starve_health() {
    let d = Spawn::new()
        .set("http.max_connections=8")
        .set("http.header_read_timeout_s=3600")
        .set("http.keep_alive_timeout_s=3600")
        .ready();
    let mut held: Vec<TcpStream> = (0..40).map(|_| connect(d.addr)).collect();
    for s in held.iter_mut().take(10) {
        s.write_all(b"GET /health HTTP/1.1\r\nHost: loc").unwrap();
    }
    for _ in 0..5 {
        assert_eq!(d.get("/health").status, 200);
    }
    let r = d.post_json(
        "/v1/caption",
        &serde_json::from_str(&caption_body()).unwrap(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // Room was made by closing held ones: at most 8 can be open.
    wait_closed(&mut held, 40 - 8);
}

/// Slow bodies on every connection slot: the one reading its body longest
/// makes room, so /health is still answered.
#[test]
fn slow_bodies_on_every_slot_do_not_starve_health() {
    let d = Spawn::new()
        .set("http.max_connections=8")
        .set("http.body_read_timeout_s=3600")
        .ready();
    let mut held = Vec::new();
    for _ in 0..12 {
        let mut s = connect(d.addr);
        s.write_all(post_head("/v1/caption", "application/json", 1000, "").as_bytes())
            .unwrap();
        s.write_all(b"{\"image\": ").unwrap();
        held.push(s);
    }
    for _ in 0..3 {
        assert_eq!(d.get("/health").status, 200);
    }
    wait_closed(&mut held, 12 - 8);
}

/// Far more sockets than the open-file limit allows: the connection limit is
/// lowered below it, so accepting never runs out of descriptors and /health
/// keeps being answered.
#[test]
fn the_connection_limit_stays_below_the_open_file_limit() {
    use std::os::unix::process::CommandExt;
    let spawn = Spawn::new()
        .set("http.header_read_timeout_s=3600")
        .set("http.keep_alive_timeout_s=3600");
    let mut command = spawn.command();
    // SAFETY: setrlimit only, between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 256,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let d = spawn.start_command(command);
    d.wait_healthy();
    let held: Vec<TcpStream> = (0..400).map(|_| connect(d.addr)).collect();
    for _ in 0..5 {
        assert_eq!(d.get("/health").status, 200);
    }
    let r = d.post_json(
        "/v1/caption",
        &serde_json::from_str(&caption_body()).unwrap(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    drop(held);
    let logs = d.logs.lock().unwrap().join("\n");
    assert!(
        logs.contains("lowered"),
        "no warning about the lowered limit"
    );
    assert!(!logs.contains("accept error"), "{logs}");
}

#[test]
fn an_over_limit_content_length_is_refused_from_the_header() {
    let d = Spawn::new().ready();
    // Expect: 100-continue with 11 MiB of raw image: 413 at once, no 100 Continue.
    let mut s = connect(d.addr);
    s.write_all(
        post_head(
            "/v1/caption",
            "image/png",
            11 * 1024 * 1024,
            "Expect: 100-continue\r\n",
        )
        .as_bytes(),
    )
    .unwrap();
    let raw = until_closed(&mut s).expect("no answer to the expectation");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("image_too_large"), "{text}");
    // A short body that declares an over-limit length: 413, not 422.
    for (ct, len) in [
        ("application/json", 15 * 1024 * 1024),
        ("image/jpeg", 11 * 1024 * 1024),
    ] {
        let mut s = connect(d.addr);
        s.write_all(post_head("/v1/caption", ct, len, "").as_bytes())
            .unwrap();
        s.write_all(b"{\"image\": \"AAAA\"}").unwrap();
        let _ = s.shutdown(Shutdown::Write);
        let raw = until_closed(&mut s).expect("no answer");
        let (status, _, body) = final_response(&raw);
        assert_eq!(status, 413, "{ct}: {}", String::from_utf8_lossy(&body));
    }
}

/// Clients each holding a near-limit body: beyond `http.body_bytes_in_flight`
/// they are refused with 503 and Retry-After instead of being buffered, and a
/// finished body gives its share back.
#[test]
fn bodies_in_flight_are_bounded() {
    let body_len = 300_000;
    let d = Spawn::new()
        .set("max_image_bytes=240000")
        .set(&format!("http.body_bytes_in_flight={}", 3 * body_len))
        .ready();
    let mut holders = Vec::new();
    for i in 1..=3 {
        let mut s = connect(d.addr);
        s.write_all(post_head("/v1/caption", "application/json", body_len, "").as_bytes())
            .unwrap();
        s.write_all(&vec![b' '; 1000]).unwrap();
        holders.push(s);
        wait_metrics(&d, "the body is reserved", |m| {
            m["body_bytes_in_flight"].as_u64().unwrap() >= (i * body_len) as u64
        });
    }
    // The budget is spent: the next body is refused before it is read.
    for _ in 0..3 {
        let mut s = connect(d.addr);
        s.write_all(post_head("/v1/caption", "application/json", body_len, "").as_bytes())
            .unwrap();
        let raw = until_closed(&mut s).expect("no answer");
        let (status, headers, body) = final_response(&raw);
        assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
        let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(j["error"], "overloaded");
        assert!(
            headers.iter().any(|h| h.starts_with("retry-after:")),
            "{headers:?}"
        );
    }
    // One holder finishes (its body is not JSON): its share comes back and a
    // normal request is served.
    let mut first = holders.remove(0);
    first.write_all(&vec![b'x'; body_len - 1000]).unwrap();
    let (status, _, _) = final_response(&until_closed(&mut first).expect("no answer"));
    assert_eq!(status, 422);
    let r = d.post_json(
        "/v1/caption",
        &serde_json::from_str(&caption_body()).unwrap(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    drop(holders);
    wait_metrics(&d, "every reservation is returned", |m| {
        m["body_bytes_in_flight"] == 0
    });
}

/// A client that shuts down its sending side after a complete request is
/// still waiting: all ten are answered (queued ones included).
#[test]
fn clients_that_half_close_after_their_request_are_answered() {
    let d = Spawn::new().set("queue_depth=16").ready();
    let body = caption_body();
    let clients: Vec<_> = (0..10)
        .map(|_| {
            let (addr, body) = (d.addr, body.clone());
            std::thread::spawn(move || {
                let mut s = connect(addr);
                s.write_all(
                    post_head("/v1/caption", "application/json", body.len(), "").as_bytes(),
                )
                .unwrap();
                s.write_all(body.as_bytes()).unwrap();
                s.shutdown(Shutdown::Write).unwrap();
                until_closed(&mut s).expect("no answer")
            })
        })
        .collect();
    for c in clients {
        let raw = c.join().unwrap();
        let (status, _, body) = final_response(&raw);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(j["caption"].is_string(), "{j}");
    }
    assert!(
        !d.logs
            .lock()
            .unwrap()
            .join("\n")
            .contains("client went away"),
        "a half-closed client was taken for gone"
    );
}

#[test]
fn pages_on_other_sites_cannot_use_the_api() {
    let d = Spawn::new().ready();
    let port = d.addr.port();
    let png = fixture_png("scene_300x200");
    let caption = caption_body();
    let post = |headers: &[(&str, &str)]| {
        let mut h = vec![("content-type", "application/json")];
        h.extend_from_slice(headers);
        request(d.addr, "POST", "/v1/caption", &h, caption.as_bytes())
    };
    // DNS rebinding: a foreign Host is not answered, on any route.
    for path in ["/", "/health", "/metrics", "/v1/caption"] {
        let r = raw_request(
            d.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: evil.example:{port}\r\n\r\n"),
        );
        assert_eq!(final_status(&r), 421, "{path}");
    }
    let r = raw_request(d.addr, "GET /health HTTP/1.1\r\n\r\n");
    assert_eq!(final_status(&r), 400, "HTTP/1.1 without Host");
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        "[::1]".into(),
    ] {
        let r = raw_request(
            d.addr,
            &format!("GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n"),
        );
        assert_eq!(final_status(&r), 200, "{host}");
    }
    // A cross-site form post (multipart needs no preflight) is refused; the
    // daemon's own page (/docs) and clients without Origin are served.
    let mut form = b"--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n".to_vec();
    form.extend_from_slice(&png);
    form.extend_from_slice(b"\r\n--XyZ--\r\n");
    let r = request(
        d.addr,
        "POST",
        "/v1/caption",
        &[
            ("content-type", "multipart/form-data; boundary=XyZ"),
            ("origin", "https://evil.example"),
        ],
        &form,
    );
    assert_eq!(r.error_code(403), "forbidden_origin");
    let own = format!("http://{}", d.addr);
    assert_eq!(post(&[("origin", &own)]).status, 200);
    // CORS is off: no page is told it may read an answer.
    let r = request(
        d.addr,
        "OPTIONS",
        "/v1/caption",
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "POST"),
        ],
        b"",
    );
    assert!(r.header("access-control-allow-origin").is_none(), "{r:?}");

    // Configured: a listed host name and a listed origin.
    let d = Spawn::new()
        .set("http.allowed_hosts=[camera.local]")
        .set("http.cors_allow_origins=[\"https://app.example\"]")
        .ready();
    let r = raw_request(d.addr, "GET /health HTTP/1.1\r\nHost: camera.local\r\n\r\n");
    assert_eq!(final_status(&r), 200);
    let r = request(
        d.addr,
        "OPTIONS",
        "/v1/caption",
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type"),
        ],
        b"",
    );
    assert!(r.status < 300, "{r:?}");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let r = request(
        d.addr,
        "POST",
        "/v1/caption",
        &[
            ("content-type", "application/json"),
            ("origin", "https://app.example"),
        ],
        caption.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let r = request(
        d.addr,
        "POST",
        "/v1/caption",
        &[
            ("content-type", "application/json"),
            ("origin", "https://evil.example"),
        ],
        caption.as_bytes(),
    );
    assert_eq!(r.error_code(403), "forbidden_origin");
}

/// A field that may appear once, repeated, is 400 (RFC 9112 §3.2 for Host):
/// which of the lines counts would otherwise depend on who reads it.
#[test]
fn a_repeated_host_or_other_single_field_is_400() {
    let d = Spawn::new().ready();
    let port = d.addr.port();
    let refused = |head: String| {
        let raw = raw_request(d.addr, &head);
        let (status, _, body) = final_response(&raw);
        let text = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(status, 400, "{head}: {text}");
        text
    };
    for hosts in [
        format!("Host: 127.0.0.1:{port}\r\nHost: evil.example"),
        format!("Host: evil.example\r\nHost: 127.0.0.1:{port}"),
        format!("Host: 127.0.0.1:{port}\r\nHost: 127.0.0.1:{port}"),
    ] {
        let text = refused(format!("GET /health HTTP/1.1\r\n{hosts}\r\n\r\n"));
        assert!(text.contains("\"bad_request\""), "{text}");
        assert!(text.contains("2 host header lines"), "{text}");
    }
    let caption = caption_body();
    for extra in [
        "Content-Type: application/json\r\nContent-Type: image/png\r\n",
        "Origin: http://localhost\r\nOrigin: https://evil.example\r\n",
        "X-API-Key: a\r\nX-API-Key: b\r\n",
    ] {
        let head = format!(
            "POST /v1/caption HTTP/1.1\r\nHost: localhost\r\n{extra}Content-Length: {}\r\n\r\n{caption}",
            caption.len()
        );
        let text = refused(head);
        assert!(text.contains("\"bad_request\""), "{text}");
    }
    // Two different lengths: hyper refuses the request before routing.
    refused(format!(
        "POST /v1/caption HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nContent-Length: 5\r\n\r\n{caption}",
        caption.len()
    ));
    assert_eq!(d.get("/health").status, 200);
}

/// Transfer-Encoding and Content-Length together (a request-smuggling shape):
/// hyper reads the body as chunked, as RFC 9112 §6.1 allows, and closes the
/// connection after the answer, as it requires, so nothing after the body is
/// read as another request.
#[test]
fn a_body_with_both_framings_is_read_chunked_and_the_connection_closed() {
    // Idle connections would otherwise be kept long past the hang guard.
    let d = Spawn::new().set("http.keep_alive_timeout_s=600").ready();
    let mut s = connect(d.addr);
    s.write_all(
        b"POST /v1/caption HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
          Transfer-Encoding: chunked\r\nContent-Length: 48\r\n\r\n2\r\n{}\r\n0\r\n\r\n\
          GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .unwrap();
    let raw = until_closed(&mut s).expect("the connection stayed open after the answer");
    let (status, _, body) = final_response(&raw);
    let text = String::from_utf8_lossy(&body).into_owned();
    // The chunked body `{}` was read: the caption route says what is missing.
    assert_eq!(status, 422, "{text}");
    assert!(text.contains("image"), "{text}");
    assert_eq!(
        String::from_utf8_lossy(&raw).matches("HTTP/1.1 ").count(),
        1,
        "the bytes after the body were answered as a request"
    );
}

/// Sends `head` (a whole request without body, Connection: close added) and returns the raw answer.
fn raw_request(addr: SocketAddr, head: &str) -> Vec<u8> {
    let mut s = connect(addr);
    let head = head.replacen("\r\n", "\r\nConnection: close\r\n", 1);
    s.write_all(head.as_bytes()).unwrap();
    until_closed(&mut s).expect("no answer")
}

fn final_status(raw: &[u8]) -> u16 {
    final_response(raw).0
}

/// A request head larger than hyper's head buffer is refused (431) instead of
/// being held; the daemon goes on.
#[test]
fn an_oversized_request_head_is_refused() {
    let d = Spawn::new().ready();
    let head = format!(
        "GET /health HTTP/1.1\r\nHost: localhost\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(200 * 1024)
    );
    let mut s = connect(d.addr);
    let _ = s.write_all(head.as_bytes());
    let raw = until_closed(&mut s).expect("the oversized head's connection stayed open");
    assert_eq!(final_status(&raw), 431);
    assert_eq!(d.get("/health").status, 200);
}
