//! What a client sends is read strictly and the same way on every path (JSON,
//! multipart, query string), JSON only with a JSON content type, and the body
//! limits follow the image limit (base64 bodies get room for the encoding).

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use common::*;
use serde_json::json;

/// A multipart/form-data body of (name, filename, bytes) parts.
fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "florenceBoundary7";
    let mut body = Vec::new();
    for (name, file, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[test]
fn wrong_types_are_refused_on_every_path() {
    let d = Spawn::new().ready();
    let png = fixture_png("scene_300x200");
    let json_cases = [
        (
            "/v1/caption",
            json!({"image": b64(&png), "max_length": "10"}),
        ),
        (
            "/v1/caption",
            json!({"image": b64(&png), "max_length": 10.5}),
        ),
        (
            "/v1/caption",
            json!({"image": b64(&png), "temperature": "0.5"}),
        ),
        ("/v1/caption", json!({"image": b64(&png), "num_beams": "2"})),
        ("/v1/caption", json!({"image": b64(&png), "task": 1})),
        ("/v1/vqa", json!({"image": b64(&png), "question": 42})),
        (
            "/v1/tasks/region_to_category",
            json!({"image": b64(&png), "region": "10,20,200,180"}),
        ),
        (
            "/v1/tasks/region_to_category",
            json!({"image": b64(&png), "region": ["10", "20", "200", "180"]}),
        ),
    ];
    for (path, body) in &json_cases {
        assert_eq!(
            d.post_json(path, body).error_code(422),
            "invalid_parameters",
            "{path} {body}"
        );
    }
    // 2^64 does not fit the u64 seed (serde_json would read it as a float).
    let body = format!(
        "{{\"image\": \"{}\", \"seed\": 18446744073709551616, \"temperature\": 0.5}}",
        b64(&png)
    );
    let r = request(
        d.addr,
        "POST",
        "/v1/caption",
        &[("content-type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(r.error_code(422), "invalid_parameters");
    let r = d.post_json(
        "/v1/caption",
        &json!({"image": b64(&png), "seed": u64::MAX, "temperature": 0.5, "num_beams": 1, "max_length": 5}),
    );
    assert_eq!(r.status, 200, "{}", r.text());

    // Multipart text parts and query values are parsed as the schema's type.
    let post_form = |path: &str, parts: &[(&str, Option<&str>, &[u8])]| {
        let (ct, body) = multipart(parts);
        request(d.addr, "POST", path, &[("content-type", &ct)], &body)
    };
    for bad in [
        &[("max_length", None, &b"ten"[..])][..],
        &[("max_length", None, &b"10.5"[..])][..],
        &[("temperature", None, &b"warm"[..])][..],
        &[
            ("max_length", None, &b"5"[..]),
            ("max_length", None, &b"6"[..]),
        ][..],
        &[("question", None, &b"what \xff\xfe is it"[..])][..],
    ] {
        let mut parts = vec![("image", Some("a.png"), &png[..])];
        parts.extend_from_slice(bad);
        if !bad.iter().any(|p| p.0 == "question") {
            parts.push(("question", None, b"what is it?"));
        }
        assert_eq!(
            post_form("/v1/vqa", &parts).error_code(422),
            "invalid_parameters",
            "{bad:?}"
        );
    }
    let r = post_form(
        "/v1/vqa",
        &[
            ("image", Some("a.png"), &png),
            ("question", None, b"what is it?"),
            ("max_length", None, b"5"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // A region as four repeated parts or query values.
    let r = post_form(
        "/v1/tasks/region_to_category",
        &[
            ("image", Some("a.png"), &png),
            ("region", None, b"10"),
            ("region", None, b"20"),
            ("region", None, b"200"),
            ("region", None, b"180"),
            ("max_length", None, b"5"),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let raw = |query: &str| {
        request(
            d.addr,
            "POST",
            &format!("/v1/tasks/region_to_category?{query}"),
            &[("content-type", "image/png")],
            &png,
        )
    };
    assert_eq!(
        raw("region=10&region=20&region=200&region=180&max_length=5").status,
        200
    );
    assert_eq!(
        raw("region=10,20,200,180").error_code(422),
        "invalid_parameters"
    );
    assert_eq!(
        raw("region=10&region=20&region=200&region=180&max_length=x").error_code(422),
        "invalid_parameters"
    );
    // The query carries the fields of a raw body only.
    for query in ["max_length=lots", "max_length=5", "num_beams=1"] {
        let r = request(
            d.addr,
            "POST",
            &format!("/v1/caption?{query}"),
            &[("content-type", "application/json")],
            json!({"image": b64(&png), "max_length": 5})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(r.error_code(422), "invalid_parameters");
    }
    // As in JSON Schema, 5.0 is an integer; null is the same as absent.
    let r = d.post_json(
        "/v1/caption",
        &json!({"image": b64(&png), "max_length": 5.0, "temperature": null}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn json_is_read_only_with_a_json_content_type() {
    let d = Spawn::new().ready();
    let png = fixture_png("scene_300x200");
    let body = json!({"image": b64(&png), "max_length": 5}).to_string();
    // What a cross-origin page can send without a preflight, and no type at all.
    for ct in [
        Some("application/x-www-form-urlencoded"),
        Some("text/plain"),
        Some("text/plain; charset=utf-8"),
        None,
    ] {
        let headers: Vec<(&str, &str)> = ct.iter().map(|c| ("content-type", *c)).collect();
        let r = request(d.addr, "POST", "/v1/caption", &headers, body.as_bytes());
        assert_eq!(r.error_code(415), "unsupported_media_type", "{ct:?}");
        assert!(r.text().contains("application/json"), "{}", r.text());
    }
    for ct in [
        "application/json",
        "application/json; charset=utf-8",
        "application/vnd.florence+json",
    ] {
        let r = request(
            d.addr,
            "POST",
            "/v1/caption",
            &[("content-type", ct)],
            body.as_bytes(),
        );
        assert_eq!(r.status, 200, "{ct}: {}", r.text());
    }
}

/// A PNG of noise (incompressible) of about `bytes` bytes.
fn noise_png(bytes: usize) -> Vec<u8> {
    let side = ((bytes / 3) as f64).sqrt() as u32;
    let mut state = 0x2545_f491_u32;
    let rgb: Vec<u8> = (0..side * side * 3)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect();
    encode(side, side, rgb, image::ImageFormat::Png)
}

#[test]
fn body_limits_follow_the_image_limit() {
    let limit = 200_000;
    let d = Spawn::new()
        .set(&format!("max_image_bytes={limit}"))
        .ready();
    // An image just under the limit is served as base64 JSON (the body is 4/3 of it).
    let image = noise_png(190_000);
    assert!(image.len() < limit && image.len() * 4 / 3 > limit);
    let r = d.post_json(
        "/v1/caption",
        &json!({"image": data_uri("image/png", &image), "max_length": 5}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let (ct, body) = multipart(&[("image", Some("a.png"), &image), ("max_length", None, b"5")]);
    let r = request(
        d.addr,
        "POST",
        "/v1/caption",
        &[("content-type", &ct)],
        &body,
    );
    assert_eq!(r.status, 200, "{}", r.text());

    // Over the limit: as a raw body, the body limit; as base64, the image limit.
    let big = noise_png(230_000);
    assert!(big.len() > limit);
    let r = request(
        d.addr,
        "POST",
        "/v1/caption",
        &[("content-type", "image/png")],
        &big,
    );
    assert_eq!(r.error_code(413), "image_too_large");
    assert!(r.text().contains("raw image limit"), "{}", r.text());
    let r = d.post_json("/v1/caption", &json!({"image": b64(&big)}));
    assert_eq!(r.error_code(413), "image_too_large");
    assert!(r.text().contains("image limit of 200000"), "{}", r.text());
    let huge = vec![b'A'; 400_000];
    let r = request(
        d.addr,
        "POST",
        "/v1/caption",
        &[("content-type", "application/json")],
        &huge,
    );
    assert_eq!(r.error_code(413), "image_too_large");
    assert!(r.text().contains("body limit"), "{}", r.text());
}

/// Sends a request head announcing `length` bytes, then `sent` bytes of body,
/// then closes its sending side; returns what the server answered.
fn announce(addr: std::net::SocketAddr, extra: &str, length: usize, sent: usize) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST /v1/caption HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n{extra}\r\n"
    )
    .unwrap();
    if sent > 0 {
        // The daemon may answer from the head and close before these bytes
        // arrive or before the half-close (then EPIPE, ECONNRESET or
        // ENOTCONN here): what it answered is what the test reads.
        let _ = s.write_all(&vec![b' '; sent]);
        let _ = s.shutdown(Shutdown::Write);
    }
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn an_over_limit_length_is_refused_from_the_header() {
    let d = Spawn::new().ready();
    let eleven_mib = 11 * 1024 * 1024;
    // Expect: 100-continue gets the refusal, not an invitation to send 11 MiB.
    let head = announce(d.addr, "Expect: 100-continue\r\n", eleven_mib * 2, 0);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    // A body shorter than announced is still refused for what was announced.
    let head = announce(d.addr, "", eleven_mib * 2, 100);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.contains("image_too_large"), "{head}");
}

/// A body that ends before its Content-Length is broken HTTP: 400
/// `bad_request`, not a complaint about the fields of the part that came.
#[test]
fn a_body_shorter_than_its_content_length_is_400() {
    let d = Spawn::new().ready();
    let head = announce(d.addr, "", 1000, 100);
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert!(head.contains("\"bad_request\""), "{head}");
    assert!(head.contains("Content-Length of 1000"), "{head}");
    assert_eq!(d.get("/health").status, 200);
}

/// A form's image part is held to the image limit like an image in any other
/// body (413 `image_too_large`), and a form of any size within the body limit
/// is read: no framework limit on forms (axum's 2 MiB) comes first.
#[test]
fn a_form_image_is_held_to_the_image_limit_only() {
    let d = Spawn::new().ready();
    let post_form = |image: &[u8]| {
        let (ct, body) = multipart(&[("image", Some("a.png"), image), ("max_length", None, b"5")]);
        request(
            d.addr,
            "POST",
            "/v1/caption",
            &[("content-type", &ct)],
            &body,
        )
    };
    let image = noise_png(3 * 1024 * 1024);
    assert!(image.len() > 2 * 1024 * 1024);
    let r = post_form(&image);
    assert_eq!(r.status, 200, "{}", r.text());
    let over = vec![0u8; 10 * 1024 * 1024 + 1];
    let r = post_form(&over);
    assert_eq!(r.error_code(413), "image_too_large");
    assert!(r.text().contains("image limit of 10485760"), "{}", r.text());
}

/// The `/raw` operations take the image file as the body and their fields in
/// the query (exactly what their document says); the contract's routes take
/// such a body too, and a JSON or form body on a `/raw` operation is 415.
#[test]
fn raw_operations_take_an_image_body_and_query_fields() {
    let d = Spawn::new().ready();
    let png = fixture_png("scene_300x200");
    let raw = |path: &str, ct: &str, body: &[u8]| {
        request(d.addr, "POST", path, &[("content-type", ct)], body)
    };
    let caption = raw("/v1/caption/raw?max_length=5", "image/png", &png);
    assert_eq!(caption.status, 200, "{}", caption.text());
    let compatible = raw("/v1/caption?max_length=5", "image/png", &png);
    assert_eq!(compatible.json()["caption"], caption.json()["caption"]);
    let r = raw(
        "/v1/vqa/raw?question=what%20is%20this%3F&max_length=5",
        "image/png",
        &png,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        raw("/v1/vqa/raw?max_length=5", "image/png", &png).error_code(422),
        "invalid_parameters"
    );
    let r = raw(
        "/v1/tasks/region_to_category/raw?region=10&region=20&region=200&region=180&max_length=5",
        "image/png",
        &png,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = raw("/v1/tasks/od/raw?max_length=5", "image/png", &png);
    assert_eq!(r.status, 200, "{}", r.text());
    let body = json!({"image": b64(&png), "max_length": 5}).to_string();
    let r = raw("/v1/caption/raw", "application/json", body.as_bytes());
    assert_eq!(r.error_code(415), "unsupported_media_type");
    assert!(r.text().contains("/v1/caption"), "{}", r.text());
    let (ct, form) = multipart(&[("image", Some("a.png"), &png)]);
    assert_eq!(
        raw("/v1/tasks/od/raw", &ct, &form).error_code(415),
        "unsupported_media_type"
    );
    assert_eq!(
        raw("/v1/tasks/nonsense/raw", "image/png", &png).error_code(422),
        "invalid_parameters"
    );
}

/// An analyze task item gives an input or leaves it out, as its schema says:
/// null is not an input (422), unlike a top-level field, where null is absent.
#[test]
fn an_analyze_task_input_is_never_null() {
    let d = Spawn::new().ready();
    let png = fixture_png("scene_300x200");
    for item in [
        json!({"task": "od", "text": null}),
        json!({"task": "od", "region": null}),
        json!({"task": "caption_to_phrase_grounding", "text": null}),
    ] {
        let r = d.post_json(
            "/v1/analyze",
            &json!({"image": b64(&png), "tasks": [item], "max_length": 5}),
        );
        assert_eq!(r.error_code(422), "invalid_parameters", "{item}");
        assert!(r.text().contains("tasks[0]"), "{}", r.text());
    }
    let r = d.post_json(
        "/v1/analyze",
        &json!({"image": b64(&png), "tasks": [{"task": "od"}], "max_length": 5, "seed": null}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

/// An input the task does not take is refused, as its document says (only an
/// absent or null one is taken), not ignored like an unknown field.
#[test]
fn an_input_the_task_does_not_take_is_refused() {
    let d = Spawn::new().ready();
    let png = fixture_png("scene_300x200");
    for (path, extra) in [
        ("/v1/tasks/od", json!({"text": "a car"})),
        ("/v1/tasks/od", json!({"region": [0, 0, 10, 10]})),
        (
            "/v1/tasks/caption_to_phrase_grounding",
            json!({"text": "a car", "region": [0, 0, 10, 10]}),
        ),
    ] {
        let mut body = json!({"image": b64(&png), "max_length": 5});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let r = d.post_json(path, &body);
        assert_eq!(r.error_code(422), "invalid_parameters", "{path} {extra}");
    }
    let r = d.post_json(
        "/v1/tasks/od",
        &json!({"image": b64(&png), "max_length": 5, "text": null, "region": null}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}
