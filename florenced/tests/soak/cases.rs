//! The soak's requests: valid ones of several tasks and body kinds, each with
//! the answer a single request gave at start, and invalid ones with the status
//! and error code the contract documents for them.

use std::net::SocketAddr;

use serde_json::{Value, json};

use crate::common::{Response, b64, data_uri, fixture_png, try_request};

/// One request, sent on a fresh connection.
#[derive(Clone)]
pub struct Request {
    pub name: String,
    pub path: String,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Request {
    pub fn send(&self, addr: SocketAddr) -> std::io::Result<Response> {
        try_request(
            addr,
            "POST",
            &self.path,
            &[("content-type", &self.content_type)],
            &self.body,
        )
    }
}

/// A valid request and the answer every later identical request must get.
pub struct Valid {
    pub request: Request,
    pub expected: Value,
}

/// An invalid request and its documented answer.
pub struct Invalid {
    pub request: Request,
    pub status: u16,
    pub code: &'static str,
}

const IMAGES: [&str; 3] = ["scene_640x480", "text_512x256", "pattern_200x300"];
const BOUNDARY: &str = "soak-boundary-7d1c";

fn json_request(name: &str, path: &str, body: Value) -> Request {
    Request {
        name: name.into(),
        path: path.into(),
        content_type: "application/json".into(),
        body: body.to_string().into_bytes(),
    }
}

/// A multipart/form-data body: the image as a file part, then text parts.
pub fn multipart(image: &[u8], fields: &[(&str, &str)]) -> Vec<u8> {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"i.png\"\r\nContent-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(image);
    for (k, v) in fields {
        body.extend_from_slice(
            format!("\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}")
                .as_bytes(),
        );
    }
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn multipart_request(name: &str, path: &str, image: &[u8], fields: &[(&str, &str)]) -> Request {
    Request {
        name: name.into(),
        path: path.into(),
        content_type: format!("multipart/form-data; boundary={BOUNDARY}"),
        body: multipart(image, fields),
    }
}

/// Every valid request: per image, greedy, beam and sampled captions, VQA,
/// detection from a raw body and a two-task analysis; JSON, multipart and raw.
pub fn valid_requests() -> Vec<Request> {
    let mut out = Vec::new();
    for image in IMAGES {
        let png = fixture_png(image);
        let uri = data_uri("image/png", &png);
        out.push(json_request(
            &format!("{image} caption greedy json"),
            "/v1/caption",
            json!({"image": uri, "num_beams": 1, "max_length": 20}),
        ));
        out.push(multipart_request(
            &format!("{image} caption 3 beams multipart"),
            "/v1/caption",
            &png,
            &[("num_beams", "3"), ("max_length", "20")],
        ));
        out.push(json_request(
            &format!("{image} caption sampled seed json"),
            "/v1/caption",
            json!({"image": b64(&png), "temperature": 0.7, "seed": 7, "max_length": 20}),
        ));
        out.push(multipart_request(
            &format!("{image} vqa greedy multipart"),
            "/v1/vqa",
            &png,
            &[
                ("question", "What color is the background?"),
                ("num_beams", "1"),
            ],
        ));
        out.push(Request {
            name: format!("{image} od 2 beams raw"),
            path: "/v1/tasks/od?num_beams=2&max_length=30".into(),
            content_type: "image/png".into(),
            body: png.clone(),
        });
        out.push(json_request(
            &format!("{image} analyze caption+ocr json"),
            "/v1/analyze",
            json!({"image": uri, "num_beams": 2, "max_length": 20,
                "tasks": [{"task": "caption"}, {"task": "ocr"}]}),
        ));
    }
    out
}

/// The parts of an answer that do not depend on timing or on what ran before.
pub fn comparable(answer: &Value) -> Value {
    match answer {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "inference_time_ms" | "queue_time_ms" | "vision_cached"
                    )
                })
                .map(|(k, v)| (k.clone(), comparable(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(comparable).collect()),
        v => v.clone(),
    }
}

/// Each valid request sent once, alone: its answer is the one to expect.
pub fn expected_answers(addr: SocketAddr) -> Result<Vec<Valid>, String> {
    valid_requests()
        .into_iter()
        .map(|request| {
            let r = request
                .send(addr)
                .map_err(|e| format!("{}: {e}", request.name))?;
            if r.status != 200 {
                return Err(format!("{}: {} {}", request.name, r.status, r.text()));
            }
            let expected = comparable(&r.json());
            Ok(Valid { request, expected })
        })
        .collect()
}

/// Requests the contract refuses, each with its documented status and code.
pub fn invalid_requests() -> Vec<Invalid> {
    let png = fixture_png("scene_300x200");
    let truncated = &png[..png.len() / 3];
    let invalid = |name: &str, path: &str, ct: &str, body: Vec<u8>, status, code| Invalid {
        request: Request {
            name: name.into(),
            path: path.into(),
            content_type: ct.into(),
            body,
        },
        status,
        code,
    };
    let json_ct = "application/json";
    vec![
        invalid(
            "bad json",
            "/v1/caption",
            json_ct,
            b"{\"image\": ".to_vec(),
            422,
            "invalid_parameters",
        ),
        invalid(
            "max_length as a string",
            "/v1/caption",
            json_ct,
            json!({"image": data_uri("image/png", &png), "max_length": "10"})
                .to_string()
                .into_bytes(),
            422,
            "invalid_parameters",
        ),
        invalid(
            "max_length over max_tokens",
            "/v1/caption",
            json_ct,
            json!({"image": data_uri("image/png", &png), "max_length": 500})
                .to_string()
                .into_bytes(),
            422,
            "invalid_parameters",
        ),
        invalid(
            "vqa without a question",
            "/v1/vqa",
            json_ct,
            json!({"image": data_uri("image/png", &png)})
                .to_string()
                .into_bytes(),
            422,
            "invalid_parameters",
        ),
        invalid(
            "truncated png in json",
            "/v1/caption",
            json_ct,
            json!({"image": data_uri("image/png", truncated)})
                .to_string()
                .into_bytes(),
            400,
            "invalid_image_format",
        ),
        invalid(
            "truncated png in multipart",
            "/v1/caption",
            &format!("multipart/form-data; boundary={BOUNDARY}"),
            multipart(truncated, &[]),
            400,
            "invalid_image_format",
        ),
        invalid(
            "random bytes as a raw image",
            "/v1/tasks/od",
            "image/png",
            (0..5000u32).map(|i| (i * 7919 % 251) as u8).collect(),
            400,
            "invalid_image_format",
        ),
        invalid(
            "json as text/plain",
            "/v1/caption",
            "text/plain",
            json!({"image": data_uri("image/png", &png)})
                .to_string()
                .into_bytes(),
            415,
            "unsupported_media_type",
        ),
    ]
}
