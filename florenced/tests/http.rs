//! florenced over real HTTP on loopback: the contract's success shapes, every
//! error code, answers equal to the engine's, concurrency, metrics, security.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::scratch::Scratch;
use common::*;
use gstflorence::engine::SessionOptions;
use gstflorence::engine::image_io::{self, ImageLimits};
use gstflorence::engine::task::Task;
use gstflorence::engine::{Florence, Output, Request};
use serde_json::json;

/// What the daemon should answer for these image bytes with the contract's defaults
/// (max_length 100, min_length 0, the model's beams).
fn expected(engine: &Florence, bytes: &[u8], task: Task, text: Option<&str>, max: usize) -> Output {
    let image = image_io::decode(bytes, &ImageLimits::default(), true).unwrap();
    let mut req = Request::new(task);
    req.input.text = text.map(str::to_owned);
    req.options.max_new_tokens = Some(max);
    req.options.min_new_tokens = Some(0);
    engine.run(&image, &req).unwrap()
}

#[test]
fn every_endpoint_answers_in_the_contract_shape() {
    let d = Spawn::new().ready();
    let e = tiny_engine();
    let png = fixture_png("scene_640x480");
    let jpeg = encode(640, 480, scene(640, 480, 5), image::ImageFormat::Jpeg);

    // /v1/caption with a data URI (the hailo-florence client), bare base64, multipart, raw body.
    let want = expected(&e, &jpeg, Task::Caption, None, 100);
    let r = d.post_json(
        "/v1/caption",
        &json!({"image": data_uri("image/jpeg", &jpeg)}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["caption"], want.result.text());
    assert_eq!(j["model"], "florence-2");
    assert_eq!(j["token_count"], want.token_count);
    assert!(j["inference_time_ms"].as_u64().is_some());
    assert_eq!(j["image_size"], json!([640, 480]));
    assert_eq!(j["backend"], "onnx-cpu");
    assert_eq!(j["task"], "<CAPTION>");
    assert!(r.header("x-inference-time").is_some() && r.header("x-queue-time").is_some());
    assert!(r.header("x-request-id").is_some());

    let want = expected(&e, &png, Task::Caption, None, 100);
    let r = d.post_json(
        "/v1/caption",
        &json!({"image": b64(&png), "unknown_field": 1}),
    );
    assert_eq!(r.json()["caption"], want.result.text());

    let boundary = "XyZzY";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(&png);
    body.extend_from_slice(
        format!("\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"max_length\"\r\n\r\n100\r\n--{boundary}--\r\n").as_bytes(),
    );
    let r = request(
        d.addr,
        "POST",
        "/v1/caption",
        &[(
            "content-type",
            &format!("multipart/form-data; boundary={boundary}"),
        )],
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["caption"], want.result.text());

    let r = request(
        d.addr,
        "POST",
        "/v1/caption?max_length=100&task=caption",
        &[("content-type", "image/png")],
        &png,
    );
    assert_eq!(r.json()["caption"], want.result.text());

    // Sampling: reproducible with a seed, and the engine's sample for that seed.
    let body = json!({"image": b64(&png), "temperature": 0.9, "seed": 7, "num_beams": 1});
    let a = d.post_json("/v1/caption", &body).json();
    let b = d.post_json("/v1/caption", &body).json();
    assert_eq!(a["caption"], b["caption"]);
    let image = image_io::decode(&png, &ImageLimits::default(), true).unwrap();
    let mut req = Request::new(Task::Caption);
    req.options.max_new_tokens = Some(100);
    req.options.min_new_tokens = Some(0);
    req.options.num_beams = Some(1);
    req.options.temperature = Some(0.9);
    req.options.seed = Some(7);
    assert_eq!(a["caption"], e.run(&image, &req).unwrap().result.text());

    // /v1/vqa
    let q = "what color is the background?";
    let want = expected(&e, &png, Task::Vqa, Some(q), 100);
    let r = d.post_json(
        "/v1/vqa",
        &json!({"image": data_uri("image/png", &png), "question": q}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["answer"], want.result.text());
    assert_eq!(j["model"], "florence-2");
    assert_eq!(j["token_count"], want.token_count);

    // /v1/tasks/{task}: structured results keyed by the task token, as post_process_generation.
    let want = expected(&e, &png, Task::Od, None, 100);
    let r = d.post_json("/v1/tasks/od", &json!({"image": b64(&png)}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["result"],
        json!({"<OD>": serde_json::to_value(&want.result).unwrap()})
    );
    let image = image_io::decode(&png, &ImageLimits::default(), true).unwrap();
    let mut req = Request::new(Task::RegionToCategory);
    req.input.region = Some([100.0, 50.0, 400.0, 300.0]);
    req.options.max_new_tokens = Some(100);
    let want = e.run(&image, &req).unwrap();
    let r = d.post_json(
        "/v1/tasks/region_to_category",
        &json!({"image": b64(&png), "region": [100, 50, 400, 300]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["result"]["<REGION_TO_CATEGORY>"],
        serde_json::to_value(&want.result).unwrap()
    );
    let r = d.post_json(
        "/v1/tasks/caption_to_phrase_grounding",
        &json!({"image": b64(&png), "text": "a purple bar"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["result"]["<CAPTION_TO_PHRASE_GROUNDING>"]["bboxes"].is_array());

    // /health, /metrics (both renderings), /openapi.json
    let h = d.get("/health");
    assert_eq!(h.status, 200);
    let h = h.json();
    assert_eq!(h["status"], "healthy");
    assert_eq!(h["model_loaded"], true);
    assert_eq!(h["hailo_device"], "not_used");
    assert!(h["uptime_seconds"].is_u64() && h["version"].is_string());

    let m = d.get("/metrics").json();
    for k in [
        "requests_total",
        "requests_succeeded",
        "requests_failed",
        "average_inference_time_ms",
        "p50_inference_time_ms",
        "p95_inference_time_ms",
        "p99_inference_time_ms",
        "memory_usage_mb",
        "model_cache_hit_rate",
        "uptime_seconds",
    ] {
        assert!(m[k].is_number(), "{k} missing in {m}");
    }
    let p = request(d.addr, "GET", "/metrics", &[("accept", "text/plain")], b"");
    assert!(p.header("content-type").unwrap().starts_with("text/plain"));
    assert!(p.text().contains("florenced_requests_total{"));
    assert!(
        d.get("/metrics?format=prometheus")
            .text()
            .contains("# TYPE")
    );

    let o = d.get("/openapi.json").json();
    for path in [
        "/v1/caption",
        "/v1/vqa",
        "/v1/tasks/od",
        "/health",
        "/metrics",
        "/openapi.json",
        "/docs",
    ] {
        assert!(
            o["paths"][path].is_object(),
            "{path} missing from the OpenAPI document"
        );
    }
}

#[test]
fn every_error_has_the_contract_shape_and_code() {
    let d = Spawn::new().ready();
    let png = fixture_png("scene_300x200");
    let jpeg = encode(320, 240, scene(320, 240, 2), image::ImageFormat::Jpeg);
    let post = |path: &str, body: &[u8]| {
        request(
            d.addr,
            "POST",
            path,
            &[("content-type", "application/json")],
            body,
        )
    };
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "/v1/caption",
            b"{\"image\": ".to_vec(),
            422,
            "invalid_parameters",
        ),
        ("/v1/caption", b"[1,2]".to_vec(), 422, "invalid_parameters"),
        ("/v1/caption", b"{}".to_vec(), 422, "invalid_parameters"),
        (
            "/v1/caption",
            json!({"image": 42}).to_string().into_bytes(),
            422,
            "invalid_parameters",
        ),
        (
            "/v1/caption",
            json!({"image": b64(&png), "max_length": "many"})
                .to_string()
                .into_bytes(),
            422,
            "invalid_parameters",
        ),
        (
            "/v1/caption",
            json!({"image": b64(&png), "temperature": true})
                .to_string()
                .into_bytes(),
            422,
            "invalid_parameters",
        ),
        (
            "/v1/caption",
            json!({"image": b64(&png), "temperature": 2.5})
                .to_string()
                .into_bytes(),
            422,
            "invalid_parameters",
        ),
        (
            "/v1/caption",
            json!({"image": b64(&png), "num_beams": 9})
                .to_string()
                .into_bytes(),
            422,
            "invalid_parameters",
        ),
        (
            "/v1/caption",
            json!({"image": b64(&png), "max_length": 500})
                .to_string()
                .into_bytes(),
            422,
            "invalid_parameters",
        ),
        (
            "/v1/caption",
            json!({"image": b64(&png), "max_length": 0})
                .to_string()
                .into_bytes(),
            422,
            "invalid_parameters",
        ),
        (
            "/v1/caption",
            json!({"image": b64(&png), "max_length": 10, "min_length": 20})
                .to_string()
                .into_bytes(),
            422,
            "invalid_parameters",
        ),
        (
            "/v1/caption",
            json!({"image": b64(&png), "task": "od"})
                .to_string()
                .into_bytes(),
            422,
            "invalid_parameters",
        ),
        (
            "/v1/caption",
            json!({"image": "https://example.com/cat.jpg"})
                .to_string()
                .into_bytes(),
            422,
            "invalid_parameters",
        ),
        (
            "/v1/caption",
            json!({"image": "data:image/png;base64,%%%%"})
                .to_string()
                .into_bytes(),
            400,
            "invalid_image_format",
        ),
        (
            "/v1/caption",
            json!({"image": "abcde"}).to_string().into_bytes(),
            400,
            "invalid_image_format",
        ),
        (
            "/v1/caption",
            json!({"image": b64(b"this is not an image at all")})
                .to_string()
                .into_bytes(),
            400,
            "invalid_image_format",
        ),
        (
            "/v1/caption",
            json!({"image": data_uri("image/jpeg", &jpeg[..jpeg.len() / 2])})
                .to_string()
                .into_bytes(),
            400,
            "invalid_image_format",
        ),
        (
            "/v1/caption",
            json!({"image": data_uri("image/png", &png_header_only(100_000, 100_000))})
                .to_string()
                .into_bytes(),
            413,
            "image_too_large",
        ),
        (
            "/v1/vqa",
            json!({"image": b64(&png)}).to_string().into_bytes(),
            422,
            "invalid_parameters",
        ),
        (
            "/v1/vqa",
            json!({"image": b64(&png), "question": "   "})
                .to_string()
                .into_bytes(),
            422,
            "invalid_parameters",
        ),
        (
            "/v1/vqa",
            json!({"image": b64(&png), "question": "x".repeat(1025)})
                .to_string()
                .into_bytes(),
            422,
            "invalid_parameters",
        ),
        (
            "/v1/tasks/no_such_task",
            json!({"image": b64(&png)}).to_string().into_bytes(),
            422,
            "invalid_parameters",
        ),
        (
            "/v1/tasks/region_to_ocr",
            json!({"image": b64(&png)}).to_string().into_bytes(),
            422,
            "invalid_parameters",
        ),
        (
            "/v1/tasks/region_to_ocr",
            json!({"image": b64(&png), "region": [0, 0, 5000, 10]})
                .to_string()
                .into_bytes(),
            422,
            "invalid_parameters",
        ),
        (
            "/v1/tasks/region_to_ocr",
            json!({"image": b64(&png), "region": [1, 2]})
                .to_string()
                .into_bytes(),
            422,
            "invalid_parameters",
        ),
        (
            "/v1/tasks/open_vocabulary_detection",
            json!({"image": b64(&png)}).to_string().into_bytes(),
            422,
            "invalid_parameters",
        ),
    ];
    for (path, body, status, code) in &cases {
        let r = post(path, body);
        assert_eq!(
            r.error_code(*status),
            *code,
            "{path} {}",
            String::from_utf8_lossy(&body[..body.len().min(120)])
        );
    }
    // A body over the JSON body limit (10 MiB as base64 plus room: ~13.4 MiB) is
    // refused as too large, before it is parsed.
    let big = vec![b'A'; 15 * 1024 * 1024];
    assert_eq!(post("/v1/caption", &big).error_code(413), "image_too_large");
    // Unsupported content type, unknown route, wrong method: same shape.
    let r = request(
        d.addr,
        "POST",
        "/v1/caption",
        &[("content-type", "text/csv")],
        b"a,b",
    );
    assert_eq!(r.error_code(415), "unsupported_media_type");
    assert_eq!(d.get("/v1/nothing").error_code(404), "not_found");
    assert_eq!(d.get("/v1/caption").error_code(405), "method_not_allowed");
    // Still serving after all that.
    let r = d.post_json("/v1/caption", &json!({"image": b64(&png)}));
    assert_eq!(r.status, 200, "{}", r.text());
    // No image data or internals in the logs.
    let logs = d.logs.lock().unwrap().join("\n");
    assert!(!logs.contains(&b64(&png)[..64]));
}

#[test]
fn concurrent_clients_each_get_their_own_answer() {
    // 64 different images (distinct sizes, so a swapped answer shows in image_size too).
    let images: Vec<(u32, u32, Vec<u8>)> = (0..64u32)
        .map(|i| {
            let (w, h) = (200 + i * 7, 150 + (i * 13) % 97);
            (w, h, encode(w, h, scene(w, h, i), image::ImageFormat::Png))
        })
        .collect();
    let e = tiny_engine();
    let opts = |img: &[u8]| json!({"image": b64(img), "max_length": 20, "num_beams": 1});
    let expect: Vec<String> = images
        .iter()
        .map(|(_, _, png)| {
            let image = image_io::decode(png, &ImageLimits::default(), true).unwrap();
            let mut req = Request::new(Task::Caption);
            req.options.max_new_tokens = Some(20);
            req.options.num_beams = Some(1);
            e.run(&image, &req).unwrap().result.text()
        })
        .collect();
    let distinct: std::collections::HashSet<_> = expect.iter().collect();
    assert!(
        distinct.len() >= 8,
        "the images should not all read the same: {distinct:?}"
    );
    let images = Arc::new(images);
    let run_all = |d: &Daemon| -> Vec<(usize, common::Response)> {
        let addr = d.addr;
        let handles: Vec<_> = (0..64)
            .map(|i| post_caption_async(addr, opts(&images[i].2).to_string()))
            .collect();
        handles
            .into_iter()
            .enumerate()
            .map(|(i, h)| (i, h.join().unwrap()))
            .collect()
    };

    // A queue deep enough for everyone, two pipelines taking from it: all 64
    // answered, each with its own caption.
    let d = Spawn::new()
        .set("queue_depth=64")
        .set("max_concurrent_requests=2")
        .ready();
    // ... on one model, loaded once: the second pipeline joins the first's.
    let first = d.wait_log("user(s) in this process", 1);
    let second = d.wait_log("user(s) in this process", 2);
    assert_eq!(
        (&first["loaded"], &first["model_users"]),
        (&json!(true), &json!(1))
    );
    assert_eq!(
        (&second["loaded"], &second["model_users"]),
        (&json!(false), &json!(2))
    );
    assert_eq!(first["model_id"], second["model_id"]);
    for (i, r) in run_all(&d) {
        assert_eq!(r.status, 200, "client {i}: {}", r.text());
        let j = r.json();
        assert_eq!(
            j["image_size"],
            json!([images[i].0, images[i].1]),
            "client {i}"
        );
        assert_eq!(j["caption"], expect[i], "client {i}");
    }
    let m = d.get("/metrics").json();
    assert_eq!(m["requests_total"], 64);
    assert_eq!(m["requests_succeeded"], 64);
    drop(d);

    // A small queue: the excess is refused at once with 503 overloaded, the rest are right.
    let d = Spawn::new().set("queue_depth=2").ready();
    let results = run_all(&d);
    let (mut ok, mut overloaded) = (0, 0);
    for (i, r) in &results {
        if r.status == 200 {
            ok += 1;
            assert_eq!(r.json()["caption"], expect[*i], "client {i}");
        } else {
            assert_eq!(r.error_code(503), "overloaded");
            assert!(r.header("retry-after").is_some());
            overloaded += 1;
        }
    }
    assert!(
        ok >= 3 && overloaded > 0,
        "ok {ok}, overloaded {overloaded}"
    );
    let r = d.post_json("/v1/caption", &opts(&images[0].2));
    assert_eq!(r.json()["caption"], expect[0]);
    let m = d.get("/metrics").json();
    assert_eq!(m["requests_total"], 65);
    assert_eq!(m["requests_succeeded"], ok + 1);
    assert_eq!(m["requests_failed"], overloaded);
    let p = d.get("/metrics?format=prometheus").text();
    assert!(p.contains(&format!(
        "florenced_requests_total{{endpoint=\"/v1/caption\",status=\"503\"}} {overloaded}"
    )));
}

/// Parses the Prometheus text format strictly enough to catch a malformed line.
fn parse_prometheus(text: &str) -> Vec<(String, String, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            assert!(
                rest.starts_with("HELP ") || rest.starts_with("TYPE "),
                "{line}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => {
                assert!(l.ends_with('}'), "{line}");
                for pair in l[..l.len() - 1].split("\",") {
                    let (k, v) = pair.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
                    assert!(
                        k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                        "{line}"
                    );
                    assert!(!v.contains('\n'));
                }
                (n, l.to_owned())
            }
            None => (series, String::new()),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        out.push((name.to_owned(), labels, value));
    }
    out
}

#[test]
fn metrics_count_what_happened() {
    let d = Spawn::new().ready();
    let png = fixture_png("pattern_200x300");
    for _ in 0..3 {
        let r = d.post_json(
            "/v1/caption",
            &json!({"image": b64(&png), "max_length": 10}),
        );
        assert_eq!(r.status, 200);
    }
    for _ in 0..2 {
        let r = d.post_json("/v1/vqa", &json!({"image": b64(&png)}));
        assert_eq!(r.status, 422);
    }
    let m = d.get("/metrics").json();
    assert_eq!(m["requests_total"], 5);
    assert_eq!(m["requests_succeeded"], 3);
    assert_eq!(m["requests_failed"], 2);
    let p50 = m["p50_inference_time_ms"].as_f64().unwrap();
    assert!(p50 > 0.0 && p50 <= m["p99_inference_time_ms"].as_f64().unwrap());
    let p = request(
        d.addr,
        "GET",
        "/metrics",
        &[(
            "accept",
            "application/openmetrics-text; version=1.0.0,text/plain;q=0.5",
        )],
        b"",
    )
    .text();
    let series = parse_prometheus(&p);
    let value = |name: &str, labels: &str| {
        series
            .iter()
            .find(|(n, l, _)| n == name && l == labels)
            .map(|s| s.2)
    };
    assert_eq!(
        value(
            "florenced_requests_total",
            "endpoint=\"/v1/caption\",status=\"200\"}"
        ),
        Some(3.0)
    );
    assert_eq!(
        value(
            "florenced_requests_total",
            "endpoint=\"/v1/vqa\",status=\"422\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        value("florenced_inference_duration_seconds_count", ""),
        Some(3.0)
    );
    assert!(value("process_resident_memory_bytes", "").unwrap() > 1e6);
    assert!(value("florenced_uptime_seconds", "").is_some());
    assert_eq!(value("florenced_queue_depth", ""), Some(0.0));
    // A JSON client that sends Accept: */* gets JSON.
    let j = request(d.addr, "GET", "/metrics", &[("accept", "*/*")], b"");
    assert_eq!(j.json()["requests_total"], 5);
}

#[test]
fn api_key_and_rate_limit() {
    let png = fixture_png("pattern_200x300");
    let body = json!({"image": b64(&png), "max_length": 5}).to_string();
    let d = Spawn::new()
        .env("FLORENCED_API_KEY", "s3cret-key")
        // One token a minute: the burst cannot refill while the test runs,
        // however slow the machine is.
        .set("rate_limit.requests_per_minute=1")
        .set("rate_limit.burst=3")
        .ready();
    let call = |headers: &[(&str, &str)]| {
        let mut h = vec![("content-type", "application/json")];
        h.extend_from_slice(headers);
        request(d.addr, "POST", "/v1/caption", &h, body.as_bytes())
    };
    let refused = call(&[]);
    assert_eq!(refused.error_code(401), "unauthorized");
    assert_eq!(
        refused.header("www-authenticate"),
        Some("Bearer realm=\"florenced\"")
    );
    assert_eq!(
        call(&[("x-api-key", "s3cret-kez")]).error_code(401),
        "unauthorized"
    );
    assert_eq!(
        call(&[("authorization", "Bearer nope")]).error_code(401),
        "unauthorized"
    );
    assert_eq!(call(&[("x-api-key", "s3cret-key")]).status, 200);
    assert_eq!(call(&[("authorization", "Bearer s3cret-key")]).status, 200);
    assert_eq!(call(&[("x-api-key", "s3cret-key")]).status, 200);
    // Burst of 3 used up: the fourth is limited.
    let r = call(&[("x-api-key", "s3cret-key")]);
    assert_eq!(r.error_code(429), "rate_limited");
    assert!(r.header("retry-after").is_some());
    // Health and metrics stay open by default.
    assert_eq!(d.get("/health").status, 200);
    assert_eq!(d.get("/metrics").status, 200);
    // The key never reaches the logs or --print-config.
    assert!(!d.logs.lock().unwrap().join("\n").contains("s3cret-key"));
    let out = Spawn::new()
        .env("FLORENCED_API_KEY", "s3cret-key")
        .command()
        .arg("--print-config")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("api_key: <redacted>") && !text.contains("s3cret-key"),
        "{text}"
    );
    assert!(text.contains("port: 0"), "{text}");
}

#[test]
fn request_timeout_answers_504_and_the_next_request_gets_its_own_answer() {
    let d = Spawn::new()
        .set("request_timeout_s=1.0")
        .set("max_tokens=1000")
        .set("threads=1")
        .ready();
    let png = fixture_png("scene_640x480");
    let small = fixture_png("pattern_200x300");
    // Forced to 1000 tokens with 8 beams: far beyond one second.
    let r = d.post_json(
        "/v1/caption",
        &json!({"image": b64(&png), "max_length": 1000, "min_length": 1000, "num_beams": 8}),
    );
    assert_eq!(r.error_code(504), "timeout");
    // The element stopped the inference at the deadline (the whole run takes
    // about 5 s on one thread here): the worker is free again at once.
    wait_until_idle(&d, std::time::Duration::from_secs(2));
    let e = tiny_engine();
    let image = image_io::decode(&small, &ImageLimits::default(), true).unwrap();
    let mut req = Request::new(Task::Caption);
    req.options.max_new_tokens = Some(8);
    req.options.num_beams = Some(1);
    let want = e.run(&image, &req).unwrap().result.text();
    // The answer is this request's, never the old one.
    let r = d.post_json(
        "/v1/caption",
        &json!({"image": b64(&small), "max_length": 8, "num_beams": 1}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["caption"], want);
    assert_eq!(r.json()["image_size"], json!([200, 300]));
}

/// Waits until no inference runs and nothing is queued.
fn wait_until_idle(d: &Daemon, within: std::time::Duration) {
    let start = std::time::Instant::now();
    loop {
        let m = d.get("/metrics").json();
        if m["inferences_running"] == 0 && m["queue_depth"] == 0 {
            return;
        }
        assert!(start.elapsed() < within, "still busy after {within:?}: {m}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn a_client_that_disconnects_during_inference_cancels_it() {
    let d = Spawn::new().set("max_tokens=1000").set("threads=1").ready();
    let png = fixture_png("scene_640x480");
    // Forced to 1000 tokens with 8 beams: runs for about 5 s on one thread if not stopped.
    let body = json!({"image": b64(&png), "max_length": 1000, "min_length": 1000, "num_beams": 8})
        .to_string();
    let mut s = std::net::TcpStream::connect(d.addr).unwrap();
    {
        use std::io::Write;
        write!(
            s,
            "POST /v1/caption HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
    }
    let start = std::time::Instant::now();
    while d.get("/metrics").json()["inferences_running"] != 1 {
        assert!(
            start.elapsed().as_secs() < 30,
            "the inference never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    drop(s);
    // The hang-up stops the inference (it would run for seconds): the log says
    // so once, and the daemon goes idle (60 s: a hang guard, not a speed check).
    d.wait_log("inference cancelled", 1);
    wait_until_idle(&d, std::time::Duration::from_secs(60));
    let cancelled = d
        .log_lines()
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("inference cancelled"))
        })
        .count();
    assert_eq!(cancelled, 1, "the running inference was cancelled once");
    // The daemon serves the next request normally.
    let r = d.post_json("/v1/caption", &json!({"image": b64(&png), "max_length": 5}));
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn model_problems_stop_start_up_with_a_clear_message() {
    let err = Spawn::new()
        .model_dir(Path::new("/nonexistent/florence-model"))
        .failure();
    assert!(err.contains("/nonexistent/florence-model"), "{err}");

    // A broken graph: the decoder truncated.
    let scratch = Scratch::new("broken");
    let dir = scratch.model_copy("model");
    let decoder = dir.join("onnx/decoder_model_merged.onnx");
    let bytes = std::fs::read(&decoder).unwrap();
    std::fs::write(&decoder, &bytes[..bytes.len() / 3]).unwrap();
    let err = Spawn::new().model_dir(&dir).failure();
    assert!(err.contains("decoder_model_merged"), "{err}");

    // Configured to stay up: /health says why, inference says not ready.
    let d = Spawn::new()
        .set("exit_on_load_failure=false")
        .model_dir(&dir)
        .start();
    let start = std::time::Instant::now();
    let h = loop {
        let h = d.get("/health");
        if h.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("decoder_model_merged"))
        {
            break h;
        }
        assert!(start.elapsed().as_secs() < 60, "{}", h.text());
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(h.status, 503);
    assert_eq!(h.json()["status"], "unhealthy");
    assert_eq!(h.json()["model_loaded"], false);
    let r = d.post_json(
        "/v1/caption",
        &json!({"image": b64(&fixture_png("pattern_200x300"))}),
    );
    assert_eq!(r.error_code(503), "model_not_ready");
    drop(d);

    // Configuration mistakes name the key and stop before anything starts.
    let out = Spawn::new()
        .command()
        .args(["--set", "queue_dept=3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("queue_dept"));
    let out = Spawn::new()
        .env("FLORENCED_QUEUE_DEPTH", "lots")
        .command()
        .arg("--print-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("queue_depth") && err.contains("FLORENCED_QUEUE_DEPTH"),
        "{err}"
    );
}

#[test]
fn a_client_that_disconnects_drops_its_queued_work() {
    let d = Spawn::new().set("max_tokens=1000").ready();
    let png = fixture_png("scene_640x480");
    let long = json!({"image": b64(&png), "max_length": 600, "min_length": 600, "num_beams": 4})
        .to_string();
    let addr = d.addr;
    let first = post_caption_async(addr, long);
    let start = std::time::Instant::now();
    while d.get("/metrics").json()["inferences_running"] != 1 {
        assert!(start.elapsed().as_secs() < 30);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // Three clients queue behind it and hang up, each once its request is queued.
    let body = json!({"image": b64(&png), "max_length": 5}).to_string();
    for queued in 1..=3 {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "POST /v1/caption HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let start = std::time::Instant::now();
        while d.get("/metrics").json()["queue_depth"] != queued {
            assert!(
                start.elapsed().as_secs() < 60,
                "request {queued} never queued"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        drop(s);
    }
    let r = first.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    // The worker dropped all three unseen instead of running the model for them.
    d.wait_log("client went away", 3);
    let start = std::time::Instant::now();
    while d.get("/metrics").json()["queue_depth"] != 0 {
        assert!(start.elapsed().as_secs() < 60, "the queue never emptied");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let dropped = d
        .log_lines()
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.contains("client went away"))
        })
        .count();
    assert_eq!(
        dropped, 3,
        "queued requests of disconnected clients that were dropped"
    );
}

#[test]
fn an_inference_failure_answers_500_and_the_service_goes_on() {
    // Loads fine; ONNX Runtime fails on prompts holding <loc_999> (a region that
    // reaches the image's right or bottom edge).
    let scratch = Scratch::new("short-table");
    let dir = scratch.path().join("model");
    common::model_copies::model_with_short_embedding_table(&model_dir(), &dir);
    let d = Spawn::new().model_dir(&dir).ready();
    let png = fixture_png("pattern_200x300");
    let caption = || d.post_json("/v1/caption", &json!({"image": b64(&png)}));
    assert_eq!(caption().status, 200);
    let r = d.post_json(
        "/v1/tasks/region_to_category",
        &json!({"image": b64(&png), "region": [0, 0, 200, 300]}),
    );
    assert_eq!(r.error_code(500), "inference_failed");
    // The client gets the contract's generic message; the log has the cause.
    assert!(!r.text().contains("Gather"), "{}", r.text());
    let id = r.header("x-request-id").unwrap();
    // The answer can reach the client before the log reader has the line.
    d.wait_log("inference failed", 1);
    let logs = d.log_lines();
    assert!(
        logs.iter().any(|l| l["request_id"] == id
            && l["level"] == "ERROR"
            && l["detail"].as_str().is_some_and(|m| m.contains("idx=1604"))),
        "no log line with the cause for {id}: {logs:?}"
    );
    // ONNX Runtime's own message is a JSON log line too, not raw stderr.
    let raw = d.logs.lock().unwrap().clone();
    assert!(
        raw.iter()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "non-JSON log lines: {raw:?}"
    );
    // A region inside the image works on the same pipeline, and so do captions.
    let r = d.post_json(
        "/v1/tasks/region_to_category",
        &json!({"image": b64(&png), "region": [10, 10, 100, 150]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(caption().status, 200);
    let m = d.get("/metrics").json();
    assert_eq!(m["requests_total"], 4);
    assert_eq!(m["requests_failed"], 1);
    assert_eq!(d.get("/health").status, 200);
}

#[test]
fn the_fp16_variant_serves_the_engines_fp16_answer() {
    let d = Spawn::new().set("model_variant=_fp16").ready();
    let png = fixture_png("scene_640x480");
    let r = d.post_json("/v1/caption", &json!({"image": b64(&png)}));
    assert_eq!(r.status, 200, "{}", r.text());
    let engine = Florence::load(
        &model_dir(),
        SessionOptions {
            intra_threads: 1,
            variant: "_fp16".into(),
            ..SessionOptions::default()
        },
    )
    .unwrap();
    let image = image_io::decode(&png, &ImageLimits::default(), true).unwrap();
    let mut req = Request::new(Task::Caption);
    req.options.max_new_tokens = Some(100);
    let want = engine.run(&image, &req).unwrap();
    assert_eq!(r.json()["caption"], want.result.text());
    assert_eq!(r.json()["token_count"], want.token_count);
}

#[test]
fn warm_up_runs_before_ready_and_a_model_that_cannot_run_fails_start_up() {
    // Default: one warm-up inference per pipeline before "serving"; it is not a request.
    let d = Spawn::new().ready();
    // /health answers 200 before the log reader has necessarily seen the line.
    d.wait_log("model loaded; serving", 1);
    let logs = d.log_lines();
    let position = |m: &str| logs.iter().position(|l| l["message"] == m);
    let warm = position("warm-up inference done").expect("a warm-up log line");
    assert!(warm < position("model loaded; serving").unwrap());
    assert_eq!(d.get("/metrics").json()["requests_total"], 0);
    drop(d);
    let d = Spawn::new().set("warmup=false").ready();
    assert_eq!(
        d.log_lines()
            .iter()
            .filter(|l| l["message"] == "warm-up inference done")
            .count(),
        0
    );
    drop(d);

    // A model that loads (every signature right) but cannot run a caption: the
    // warm-up finds it, start-up fails with the cause instead of reporting ready.
    let scratch = Scratch::new("no-rows");
    let dir = scratch.path().join("model");
    common::model_copies::model_with_embedding_rows(&model_dir(), &dir, 100);
    let err = Spawn::new().model_dir(&dir).failure();
    assert!(
        err.contains("warm-up inference failed") && err.contains("Gather"),
        "{err}"
    );
}

#[test]
fn two_workers_on_one_model_encode_an_image_once_for_both_requests() {
    // One client's <CAPTION> and <OD> of one image, sent at once, land on
    // the two pipelines; they share the model, so the image's vision
    // features are computed once: the other request waits for them (or
    // finds them among the model's recent images).
    let d = Spawn::new().set("max_concurrent_requests=2").ready();
    d.wait_log("user(s) in this process", 2);
    let png = fixture_png("scene_640x480");
    let body = |task: &str| json!({"image": b64(&png), "tasks": [{"task": task}]});
    let (caption, od) = std::thread::scope(|s| {
        let caption = s.spawn(|| d.post_json("/v1/analyze", &body("caption")));
        let od = s.spawn(|| d.post_json("/v1/analyze", &body("od")));
        (caption.join().unwrap(), od.join().unwrap())
    });
    let cached: Vec<bool> = [&caption, &od]
        .iter()
        .map(|r| {
            assert_eq!(r.status, 200, "{}", r.text());
            r.json()["results"][0]["vision_cached"].as_bool().unwrap()
        })
        .collect();
    assert!(cached[0] != cached[1], "vision_cached: {cached:?}");
    let p = d.get("/metrics?format=prometheus").text();
    for source in ["encoded", "reused"] {
        assert!(
            p.contains(&format!(
                "florenced_vision_features_total{{source=\"{source}\"}} 1\n"
            )),
            "{p}"
        );
    }
    // The answers are each task's own.
    let e = tiny_engine();
    let want = expected(&e, &png, Task::Od, None, 100);
    assert_eq!(
        od.json()["results"][0]["result"]["<OD>"],
        serde_json::to_value(&want.result).unwrap()
    );
    assert_eq!(
        caption.json()["results"][0]["text"],
        expected(&e, &png, Task::Caption, None, 100).result.text()
    );
}
