//! What the fuzz targets share: the request path of florenced as its handlers
//! run it, and the tiny model loaded once per fuzzing process.
//!
//! Every target feeds its input to the real functions and only asks that they
//! return (an error is a fine answer to bad input; a panic or a sanitizer
//! report is a finding).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, header};
use florenced::http::body_budget::BodyBudget;
use florenced::config::Config;
use florenced::http::body::{BodyIntake, BodyKind, BodyLimits, read_body};
use florenced::http::request::Fields;
use gstflorence::engine::SessionOptions;
use gstflorence::engine::Florence;
use gstflorence::engine::task::Task;

/// The multipart boundary of the request_multipart seeds.
pub const BOUNDARY: &str = "florencefuzz";

/// Splits an optional query line off the input: `?a=1&b=2\n<body>`, so that
/// seed files stay readable and the fuzzer mutates both parts.
pub fn split_query(data: &[u8]) -> (Option<String>, &[u8]) {
    match data.strip_prefix(b"?") {
        Some(rest) => {
            let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            let query = String::from_utf8_lossy(&rest[..end]).into_owned();
            (Some(query), rest.get(end + 1..).unwrap_or_default())
        }
        None => (None, data),
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime")
    })
}

/// Reads and parses a body as an inference route does (the Content-Type
/// decides the body kind), then asks the parsed fields for everything the
/// caption, vqa, task and analyze routes take.
pub fn exercise_request(content_type: &str, query: Option<&str>, body: &[u8]) {
    let config = Config::default();
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    let Ok(kind) = BodyKind::of(&headers) else {
        return;
    };
    let budget = BodyBudget::new(config.http.body_bytes_in_flight);
    let intake = BodyIntake {
        limits: BodyLimits::new(config.max_image_bytes),
        budget: &budget,
        timeout: Duration::from_secs(60),
    };
    let body = Body::from(body.to_vec());
    runtime().block_on(async {
        let Ok((bytes, _permit)) = read_body(&headers, body, kind, &intake).await else {
            return;
        };
        let Ok(fields) = Fields::parse(&headers, query, kind, bytes).await else {
            return;
        };
        exercise_fields(&fields, &config, &intake.limits);
    });
}

/// Every accessor of the parsed fields, in the order the routes call them.
pub fn exercise_fields(fields: &Fields, config: &Config, limits: &BodyLimits) {
    if let Ok(Some(name)) = fields.string("task") {
        let _ = name.parse::<Task>();
    }
    let _ = fields.text_input("question");
    let _ = fields.text_input("text");
    let _ = fields.tasks();
    for task in [Task::Caption, Task::Vqa, Task::RegionToOcr] {
        let _ = fields.params(task, config);
    }
    if let Ok(image) = fields.image() {
        let _ = limits.check_image(image.len());
    }
}

/// The tiny test model (tests/fixtures/tiny-florence2), loaded once: its real
/// tokenizer, VQA template and post-processor settings.
pub fn tiny_florence() -> &'static Florence {
    static MODEL: OnceLock<Florence> = OnceLock::new();
    MODEL.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let ort = root.join(".ort/lib/libonnxruntime.so");
        let options = SessionOptions {
            intra_threads: 1,
            ort_library: ort.is_file().then_some(ort),
            vision_cache: false,
            graph_cache: None,
            ..SessionOptions::default()
        };
        let dir = root.join("tests/fixtures/tiny-florence2");
        Florence::load(&dir, options)
            .unwrap_or_else(|e| panic!("cannot load {}: {e}", dir.display()))
    })
}

/// Every task's result for a generated text, as the routes return it.
pub fn exercise_post_process(text: &str, width: u32, height: u32) {
    let florence = tiny_florence();
    for task in Task::ALL {
        let result = florence.post_process(task, text, width, height);
        let _ = result.text();
        let _ = serde_json::to_string(&result);
    }
}

/// Splits the next line off `data` (the rest is empty when there is no newline).
pub fn next_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(end) => (&data[..end], &data[end + 1..]),
        None => (data, &[]),
    }
}

/// An image size written `W H` (each 1..=65536, as decoded images have: the
/// decoder refuses an empty one); 640x480 when the line is not that.
pub fn parse_size(line: &[u8]) -> (u32, u32) {
    let text = String::from_utf8_lossy(line);
    let mut parts = text
        .split_whitespace()
        .map(|p| p.parse::<u32>().ok().map(|v| v.clamp(1, 65_536)));
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(w), Some(h)) => (w, h),
        _ => (640, 480),
    }
}
