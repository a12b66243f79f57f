//! What florenced tells its operators: /metrics checked by promtool and agreeing
//! between its two renderings, and logs that stay one format on a pipe (JSON
//! lines with GStreamer's debug output among them, text without colour codes).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::{Value, json};

/// promtool from scripts/setup.sh (or $PROMTOOL).
fn promtool() -> PathBuf {
    let p = std::env::var_os("PROMTOOL")
        .map_or_else(|| root().join(".tools/bin/promtool"), PathBuf::from);
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup.sh",
        p.display()
    );
    p
}

/// `promtool check metrics` on an exposition: its findings, empty when clean.
fn promtool_findings(exposition: &str) -> String {
    let mut child = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        findings
    } else {
        format!("exit {}: {findings}", out.status)
    }
}

/// (name, labels, value) of every sample; promtool has checked the syntax.
fn samples(exposition: &str) -> Vec<(String, String, f64)> {
    exposition
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            (
                name.to_owned(),
                labels.trim_end_matches('}').to_owned(),
                value.parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn prometheus_metrics_pass_promtool_and_agree_with_the_json() {
    // A timeout above the old top bucket (30 s) and off the bucket grid.
    let d = Spawn::new().set("request_timeout_s=90").ready();
    let png = fixture_png("pattern_200x300");
    for _ in 0..2 {
        let r = d.post_json("/v1/caption", &json!({"image": b64(&png), "max_length": 5}));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = d.post_json("/v1/vqa", &json!({"image": b64(&png)}));
    assert_eq!(r.status, 422);
    assert_eq!(d.get("/no/such/route").status, 404);
    assert_eq!(d.get("/health").status, 200);

    let m = d.get("/metrics").json();
    let p = d.get("/metrics?format=prometheus").text();
    assert_eq!(promtool_findings(&p), "", "promtool on:\n{p}");
    let s = samples(&p);
    let sum = |name: &str, keep: &dyn Fn(&str) -> bool| -> f64 {
        s.iter()
            .filter(|(n, l, _)| n == name && keep(l))
            .map(|x| x.2)
            .sum()
    };
    let value = |name: &str| {
        s.iter()
            .find(|(n, _, _)| n == name)
            .map(|x| x.2)
            .unwrap_or_else(|| panic!("no {name} in\n{p}"))
    };

    // The JSON and florenced_requests_total count the same requests: the /v1 ones.
    let total = sum("florenced_requests_total", &|_| true);
    let ok = sum("florenced_requests_total", &|l| {
        l.split("status=\"")
            .nth(1)
            .is_some_and(|s| s.starts_with('2'))
    });
    assert_eq!(m["requests_total"], 3);
    assert_eq!(m["requests_total"].as_f64(), Some(total), "{m}\n{p}");
    assert_eq!(m["requests_succeeded"].as_f64(), Some(ok), "{m}\n{p}");
    assert_eq!(m["requests_failed"].as_f64(), Some(total - ok), "{m}\n{p}");
    // Every route, /health and the unmatched ones included, is in the HTTP counter.
    assert!(
        sum("florenced_http_requests_total", &|l| l
            .contains("\"/health\""))
            >= 1.0
    );
    assert_eq!(
        sum("florenced_http_requests_total", &|l| l
            .contains("endpoint=\"other\",status=\"404\"")),
        1.0
    );
    assert_eq!(
        sum("florenced_http_requests_total", &|l| l.contains("/v1/")),
        total
    );
    assert_eq!(value("florenced_inference_duration_seconds_count"), 2.0);

    // The latency buckets reach past the configured timeout.
    for h in [
        "florenced_request_duration_seconds_bucket",
        "florenced_inference_duration_seconds_bucket",
    ] {
        let top = s
            .iter()
            .filter(|(n, _, _)| n == h)
            .filter_map(|(_, l, _)| l.split("le=\"").nth(1)?.split('"').next()?.parse().ok())
            .filter(|le: &f64| le.is_finite())
            .fold(0.0, f64::max);
        assert!(top > 90.0, "{h}: top finite bucket {top}");
    }

    // The standard process metrics.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = value("process_start_time_seconds");
    assert!(
        started <= now && started > now - 600.0,
        "{started} vs {now}"
    );
    assert!(value("process_resident_memory_bytes") > 1e6);
    assert!(value("process_virtual_memory_bytes") >= value("process_resident_memory_bytes"));
    assert!(value("process_open_fds") >= 3.0);
    assert!(value("process_max_fds") >= value("process_open_fds"));
    assert!(value("process_threads") >= 2.0);
    assert!(value("process_cpu_seconds_total") >= 0.0);
    assert!(value("florenced_uptime_seconds") > 0.0);
}

/// Waits until a log line satisfies `want`; all lines so far on timeout.
fn wait_for_log(d: &Daemon, want: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        if let Some(l) = d.log_lines().into_iter().find(&want) {
            return l;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no such log line in {:?}",
            d.logs.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn gstreamer_debug_output_is_json_lines_in_the_same_log() {
    let d = Spawn::new()
        .env("GST_DEBUG", "GST_STATES:4,florencecaption:6")
        .ready();
    let r = d.post_json(
        "/v1/caption",
        &json!({"image": b64(&fixture_png("pattern_200x300")), "max_length": 5}),
    );
    assert_eq!(r.status, 200);
    let gst = wait_for_log(&d, |l| {
        l["target"] == "gstreamer" && l["category"] == "GST_STATES"
    });
    assert_eq!(gst["level"], "INFO", "{gst}");
    for field in ["file", "function", "object", "message"] {
        assert!(gst[field].is_string(), "{field} missing in {gst}");
    }
    assert!(gst["line"].is_u64(), "{gst}");
    // Every stderr line, GStreamer's included, is a JSON object.
    let raw = d.logs.lock().unwrap().clone();
    let bad: Vec<&String> = raw
        .iter()
        .filter(|l| !serde_json::from_str::<Value>(l).is_ok_and(|v| v.is_object()))
        .collect();
    assert!(bad.is_empty(), "non-JSON stderr lines: {bad:?}");
}

#[test]
fn a_client_error_is_logged_at_info() {
    let d = Spawn::new().ready();
    let r = d.post_json(
        "/v1/vqa",
        &json!({"image": b64(&fixture_png("pattern_200x300"))}),
    );
    assert_eq!(r.error_code(422), "invalid_parameters");
    let id = r.header("x-request-id").unwrap().to_owned();
    let line = wait_for_log(&d, |l| l["request_id"] == id.as_str() && l["status"] == 422);
    assert_eq!(line["level"], "INFO", "{line}");
}

#[test]
fn text_logs_into_a_pipe_have_no_colour_codes() {
    let mut child = Spawn::new()
        .set("log_format=text")
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        let listening = line.contains("listening on");
        seen.push(line);
        if listening {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.last().is_some_and(|l| l.contains("INFO")),
        "no start-up line: {seen:?}"
    );
    assert!(
        seen.iter().all(|l| !l.contains('\x1b')),
        "colour codes in a pipe: {seen:?}"
    );
}

/// Decoder runs that advanced more than one request, from a Prometheus page.
fn batched_runs(page: &str) -> f64 {
    samples(page)
        .iter()
        .filter(|(n, l, _)| {
            n == "florenced_model_decode_steps_total" && !l.contains("requests=\"1\"")
        })
        .map(|x| x.2)
        .sum()
}

#[test]
fn concurrent_requests_share_one_model_and_metrics_show_them_in_flight_and_queued() {
    // decode_slowdown 1: the two never share a decoder run (the second waits).
    let d = Spawn::new()
        .set("max_concurrent_requests=2")
        .set("decode_slowdown=1")
        .set("max_tokens=1000")
        .ready();
    let png = fixture_png("pattern_200x300");
    // Long answers (1000 greedy tokens), so both are in flight at once.
    let body = json!({
        "image": b64(&png), "task": "<MORE_DETAILED_CAPTION>",
        "max_length": 1000, "min_length": 1000, "num_beams": 1,
    })
    .to_string();
    let clients: Vec<_> = (0..2)
        .map(|_| post_caption_async(d.addr, body.clone()))
        .collect();
    let in_flight = |p: &str| -> Vec<(String, f64)> {
        samples(p)
            .into_iter()
            .filter(|(n, _, _)| n == "florenced_model_requests_in_flight")
            .map(|(_, l, v)| (l, v))
            .collect()
    };
    // max_concurrent_requests = 2: two requests in flight on one model.
    let start = Instant::now();
    loop {
        let p = d.get("/metrics?format=prometheus").text();
        let models = in_flight(&p);
        if models.iter().any(|m| m.1 == 2.0) {
            assert_eq!(models.len(), 1, "one model for both pipelines: {models:?}");
            assert!(models[0].0.contains("model_dir=\""), "{models:?}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "never two requests in flight: {models:?}"
        );
        std::thread::yield_now();
    }
    for c in clients {
        let r = c.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let p = d.get("/metrics?format=prometheus").text();
    assert_eq!(promtool_findings(&p), "", "promtool on:\n{p}");
    let models = in_flight(&p);
    assert!(models.iter().all(|m| m.1 == 0.0), "{models:?}");
    assert_eq!(batched_runs(&p), 0.0, "decode_slowdown 1 shared a run: {p}");
    let s = samples(&p);
    let count = s
        .iter()
        .find(|(n, _, _)| n == "florenced_model_queue_wait_seconds_count")
        .map(|x| x.2);
    assert_eq!(count, Some(2.0), "{p}");
}

#[test]
fn concurrent_requests_decode_in_one_batch_and_metrics_count_its_sizes() {
    let d = Spawn::new()
        .set("max_concurrent_requests=3")
        .set("max_tokens=1000")
        .ready();
    let png = fixture_png("pattern_200x300");
    // Long answers, so the three decode at once; different tasks, greedy and beams.
    let bodies: Vec<String> = [
        ("<MORE_DETAILED_CAPTION>", 1000, 1),
        ("<DETAILED_CAPTION>", 800, 2),
        ("<CAPTION>", 900, 1),
    ]
    .iter()
    .map(|(task, tokens, beams)| {
        json!({
            "image": b64(&png), "task": task,
            "max_length": tokens, "min_length": tokens, "num_beams": beams,
        })
        .to_string()
    })
    .collect();
    let captions = |responses: Vec<Response>| -> Vec<serde_json::Value> {
        responses
            .into_iter()
            .map(|r| {
                assert_eq!(r.status, 200, "{}", r.text());
                r.json()["caption"].clone()
            })
            .collect()
    };
    let solo = captions(
        bodies
            .iter()
            .map(|b| post_caption_async(d.addr, b.clone()).join().unwrap())
            .collect(),
    );
    let p = d.get("/metrics?format=prometheus").text();
    assert_eq!(batched_runs(&p), 0.0, "one after another, alone: {p}");

    let clients: Vec<_> = bodies
        .iter()
        .map(|b| post_caption_async(d.addr, b.clone()))
        .collect();
    let together = captions(clients.into_iter().map(|c| c.join().unwrap()).collect());
    assert_eq!(together, solo, "answers in a batch");
    let p = d.get("/metrics?format=prometheus").text();
    assert_eq!(promtool_findings(&p), "", "promtool on:\n{p}");
    assert!(
        batched_runs(&p) > 0.0,
        "no decoder run held two requests: {p}"
    );
    let s = samples(&p);
    let count = s
        .iter()
        .find(|(n, _, _)| n == "florenced_model_queue_wait_seconds_count")
        .map(|x| x.2);
    assert_eq!(count, Some(6.0), "{p}");
}
