//! Turning an HTTP request into an image and validated parameters: JSON
//! (data URI or bare base64), multipart/form-data, or a raw image body with
//! the parameters in the query string.
//!
//! One parser for every body kind, strict in the same way: a JSON value must
//! have the schema's JSON type (`"10"` is not an integer; `10.0` is one, as in
//! JSON Schema; a region is an array of four numbers; null is the same as
//! absent); multipart text parts and query parameters are text by nature and
//! are parsed as the schema's type (`10`, not `10.0`; a region is four
//! repeated values, as OpenAPI's form style sends an array). The query string
//! carries the fields of a raw image body only. Unknown fields are ignored (the
//! contract).

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart};
use axum::http::{HeaderMap, Request};
use base64::Engine as _;
use serde_json::Value;

use gstflorence::engine::task::{MAX_INPUT_CHARS, Task};

/// Most tasks one analyze request may ask for.
pub const MAX_TASKS: usize = 16;

/// One task of an analyze request.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskSpec {
    pub task: Task,
    pub text: Option<String>,
    pub region: Option<[f64; 4]>,
}

use crate::config::Config;
use crate::http::body::BodyKind;
use crate::http::error::ApiError;
use gstflorence::protocol::RequestParams;

/// The fields an inference request may carry.
const FIELD_NAMES: [&str; 12] = [
    "image",
    "tasks",
    "task",
    "question",
    "text",
    "region",
    "max_length",
    "min_length",
    "temperature",
    "num_beams",
    "seed",
    "file",
];

/// One request field as it arrived in the body.
#[derive(Debug, Clone)]
pub enum Field {
    Json(Value),
    /// Multipart text parts of this name, in order.
    Text(Vec<String>),
    Bytes(Vec<u8>),
}

#[derive(Debug, Default)]
pub struct Fields {
    body: BTreeMap<String, Field>,
    /// Query parameters, each with every value it was given.
    query: BTreeMap<String, Vec<String>>,
}

fn not_utf8(name: &str) -> ApiError {
    ApiError::invalid_params(format!("field \"{name}\" is not valid UTF-8"))
}

impl Fields {
    /// Parses a body of the given kind; `query` is the raw query string.
    pub async fn parse(
        headers: &HeaderMap,
        query: Option<&str>,
        kind: BodyKind,
        body: axum::body::Bytes,
    ) -> Result<Fields, ApiError> {
        let mut fields = Fields::default();
        match kind {
            BodyKind::Multipart => {
                let mut req = Request::new(Body::from(body));
                *req.headers_mut() = headers.clone();
                // The body is in memory, read within its own limit: not
                // axum's default 2 MiB, which would refuse a larger image
                // before its size is checked against max_image_bytes.
                DefaultBodyLimit::disable().apply(&mut req);
                let mut mp = Multipart::from_request(req, &())
                    .await
                    .map_err(|e| ApiError::invalid_params(format!("bad multipart body: {e}")))?;
                while let Some(field) = mp
                    .next_field()
                    .await
                    .map_err(|e| ApiError::invalid_params(format!("bad multipart body: {e}")))?
                {
                    let name = field.name().unwrap_or_default().to_owned();
                    let is_file = field.file_name().is_some() || name == "image" || name == "file";
                    let data = field.bytes().await.map_err(|e| {
                        ApiError::invalid_params(format!("bad multipart part: {e}"))
                    })?;
                    let key = if name == "file" { "image".into() } else { name };
                    if is_file {
                        fields.body.insert(key, Field::Bytes(data.to_vec()));
                        continue;
                    }
                    let text = String::from_utf8(data.to_vec()).map_err(|_| not_utf8(&key))?;
                    match fields.body.entry(key).or_insert(Field::Text(Vec::new())) {
                        Field::Text(values) => values.push(text),
                        other => *other = Field::Text(vec![text]),
                    }
                }
            }
            BodyKind::RawImage => {
                fields
                    .body
                    .insert("image".into(), Field::Bytes(body.to_vec()));
            }
            BodyKind::Json => {
                let v: Value = serde_json::from_slice(&body).map_err(|e| {
                    ApiError::invalid_params(format!("body is not valid JSON: {e}"))
                })?;
                let Value::Object(obj) = v else {
                    return Err(ApiError::invalid_params(
                        "body must be a JSON object with an \"image\" field",
                    ));
                };
                for (k, v) in obj {
                    if !v.is_null() {
                        fields.body.insert(k, Field::Json(v));
                    }
                }
            }
        }
        if let Some(q) = query {
            for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                // The query carries the fields of a raw image body only; a JSON or
                // form body carries its own (other query parameters are ignored).
                if kind != BodyKind::RawImage {
                    if FIELD_NAMES.contains(&&*k) {
                        return Err(ApiError::invalid_params(format!(
                            "{k} is in the query string: with a JSON or multipart body, send every field in the body"
                        )));
                    }
                    continue;
                }
                fields
                    .query
                    .entry(k.into_owned())
                    .or_default()
                    .push(v.into_owned());
            }
        }
        Ok(fields)
    }

    /// A field parsed as its schema type from wherever it came: the body, or
    /// the query string of a raw image body.
    fn typed<T>(
        &self,
        name: &str,
        json: impl Fn(&Value) -> Option<T>,
        text: impl Fn(&[String]) -> Option<T>,
        bad: impl Fn() -> ApiError,
    ) -> Result<Option<T>, ApiError> {
        match (self.body.get(name), self.query.get(name)) {
            (None, None) => Ok(None),
            (Some(_), Some(_)) => Err(ApiError::invalid_params(format!(
                "{name} is given both in the body and in the query string"
            ))),
            (None, Some(values)) => text(values).map(Some).ok_or_else(bad),
            (Some(Field::Json(v)), None) => json(v).map(Some).ok_or_else(bad),
            (Some(Field::Text(values)), None) => text(values).map(Some).ok_or_else(bad),
            (Some(Field::Bytes(_)), None) => Err(bad()),
        }
    }

    /// The encoded image bytes.
    pub fn image(&self) -> Result<Vec<u8>, ApiError> {
        let not_string =
            || ApiError::invalid_params("field \"image\" must be a string (data URI or base64)");
        match self.body.get("image") {
            None => Err(ApiError::invalid_params("missing field \"image\"")),
            Some(Field::Bytes(b)) if b.is_empty() => {
                Err(ApiError::invalid_params("field \"image\" is empty"))
            }
            Some(Field::Bytes(b)) => Ok(b.clone()),
            Some(Field::Json(Value::String(s))) => decode_image_string(s),
            Some(Field::Text(values)) => match &values[..] {
                [s] => decode_image_string(s),
                _ => Err(ApiError::invalid_params(
                    "field \"image\" is given more than once",
                )),
            },
            Some(Field::Json(_)) => Err(not_string()),
        }
    }

    fn int(&self, name: &str, min: u64, max: u64) -> Result<Option<u64>, ApiError> {
        let v = self.typed(
            name,
            json_u64,
            |t| one(t)?.parse::<u64>().ok(),
            || ApiError::invalid_params(format!("{name} must be an integer in {min}..={max}")),
        )?;
        match v {
            Some(v) if v < min || v > max => Err(ApiError::invalid_params(format!(
                "{name} must be an integer in {min}..={max}"
            ))),
            v => Ok(v),
        }
    }

    fn float(&self, name: &str, min: f64, max: f64) -> Result<Option<f64>, ApiError> {
        let bad = || ApiError::invalid_params(format!("{name} must be a number in {min}..={max}"));
        let v = self.typed(name, Value::as_f64, |t| one(t)?.parse::<f64>().ok(), bad)?;
        match v {
            Some(v) if !v.is_finite() || v < min || v > max => Err(bad()),
            v => Ok(v),
        }
    }

    pub fn string(&self, name: &str) -> Result<Option<String>, ApiError> {
        self.typed(
            name,
            |v| v.as_str().map(str::to_owned),
            |t| one(t).map(str::to_owned),
            || ApiError::invalid_params(format!("{name} must be a string")),
        )
    }

    /// A text input (question, phrase, <loc_> region): not blank and at most
    /// MAX_INPUT_CHARS characters as sent; returned trimmed.
    pub fn text_input(&self, name: &str) -> Result<Option<String>, ApiError> {
        let Some(t) = self.string(name)? else {
            return Ok(None);
        };
        if blank(&t) {
            return Err(ApiError::invalid_params(format!(
                "{name} must not be blank"
            )));
        }
        if t.chars().count() > MAX_INPUT_CHARS {
            return Err(ApiError::invalid_params(format!(
                "{name} is longer than {MAX_INPUT_CHARS} characters"
            )));
        }
        Ok(Some(t.trim().to_owned()))
    }

    fn region(&self) -> Result<Option<[f64; 4]>, ApiError> {
        let four = |values: Option<Vec<f64>>| match values?[..] {
            [a, b, c, d] if [a, b, c, d].iter().all(|v| v.is_finite()) => Some([a, b, c, d]),
            _ => None,
        };
        self.typed(
            "region",
            |v| four(v.as_array()?.iter().map(Value::as_f64).collect()),
            |t| four(t.iter().map(|s| s.parse::<f64>().ok()).collect()),
            || {
                ApiError::invalid_params(
                    "region must be [x1, y1, x2, y2] in image pixels: an array of 4 numbers \
                     (4 repeated form or query values)",
                )
            },
        )
    }
    /// The `tasks` of an analyze request: an array of 1 to 16 objects
    /// `{task, text?, region?}`, each checked as strictly as the single-task routes.
    pub fn tasks(&self) -> Result<Vec<TaskSpec>, ApiError> {
        let bad = |m: String| ApiError::invalid_params(m);
        let Some(Field::Json(Value::Array(items))) = self.body.get("tasks") else {
            return Err(bad(
                "tasks must be an array of {\"task\", \"text\"?, \"region\"?} objects".into(),
            ));
        };
        if items.is_empty() || items.len() > MAX_TASKS {
            return Err(bad(format!(
                "tasks must hold 1 to {MAX_TASKS} tasks, got {}",
                items.len()
            )));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let at = |m: &str| bad(format!("tasks[{i}]: {m}"));
                let Value::Object(obj) = item else {
                    return Err(at("must be an object {\"task\", \"text\"?, \"region\"?}"));
                };
                if let Some(k) = obj
                    .keys()
                    .find(|k| !["task", "text", "region"].contains(&k.as_str()))
                {
                    return Err(at(&format!(
                        "unknown field {k:?} (a task takes task, text, region)"
                    )));
                }
                let task = match obj.get("task") {
                    Some(Value::String(name)) => {
                        name.parse::<Task>().map_err(|e| at(&e.to_string()))?
                    }
                    _ => return Err(at("task must be a task name such as \"od\"")),
                };
                // In a task item, as its schema says, an input is given or left out (no null).
                let text = match obj.get("text") {
                    None => None,
                    Some(Value::String(t)) if blank(t) => return Err(at("text is blank")),
                    Some(Value::String(t)) if t.chars().count() > MAX_INPUT_CHARS => {
                        return Err(at(&format!(
                            "text is longer than {MAX_INPUT_CHARS} characters"
                        )));
                    }
                    Some(Value::String(t)) => Some(t.clone()),
                    Some(_) => return Err(at("text must be a string")),
                };
                let region = match obj.get("region") {
                    None => None,
                    Some(Value::Array(a)) => match a
                        .iter()
                        .map(Value::as_f64)
                        .collect::<Option<Vec<_>>>()
                        .as_deref()
                    {
                        Some(&[x1, y1, x2, y2])
                            if [x1, y1, x2, y2].iter().all(|v| v.is_finite()) =>
                        {
                            Some([x1, y1, x2, y2])
                        }
                        _ => return Err(at("region must be an array of 4 numbers")),
                    },
                    Some(_) => return Err(at("region must be an array of 4 numbers")),
                };
                Ok(TaskSpec { task, text, region })
            })
            .collect()
    }

    /// The generation parameters shared by every inference route, with the
    /// configured defaults and bounds.
    ///
    /// This is where a request's parameters are validated (types, bounds,
    /// min <= max); the element reads them again only as it reads every
    /// application's request (`gstflorence::protocol::request_fields`).
    pub fn params(&self, task: Task, config: &Config) -> Result<RequestParams, ApiError> {
        let max_tokens = u64::from(config.max_tokens);
        let max_length = self
            .int("max_length", 1, max_tokens)?
            .map_or(config.max_length, |v| v as u32);
        let min_length = self
            .int("min_length", 0, max_tokens)?
            .map_or(config.min_length.min(max_length), |v| v as u32);
        if min_length > max_length {
            return Err(ApiError::invalid_params(format!(
                "min_length ({min_length}) must not exceed max_length ({max_length})"
            )));
        }
        let temperature = self
            .float("temperature", 0.0, 2.0)?
            .map_or(config.temperature, |t| t as f32);
        let num_beams = self
            .int("num_beams", 1, 8)?
            .map(|v| v as u32)
            .or(config.num_beams);
        // Sampling without a seed must differ between requests (the element's own
        // default seed is fixed); with one it is reproducible.
        let seed = self.int("seed", 0, u64::MAX)?.or_else(|| {
            (temperature > 0.0).then(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64)
            })
        });
        Ok(RequestParams {
            task: Some(task),
            text: None,
            region: self.region()?,
            max_new_tokens: Some(max_length),
            min_new_tokens: Some(min_length),
            num_beams,
            temperature: Some(f64::from(temperature)),
            seed,
        })
    }
}

/// A JSON integer. As in JSON Schema, a number with a zero fraction (`10.0`)
/// is an integer; `10.5`, `"10"` and numbers past u64 (`2^64`) are not.
fn json_u64(v: &Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let f = v.as_f64()?;
    // u64::MAX as f64 rounds up to 2^64, which is already out of range.
    (f.fract() == 0.0 && f >= 0.0 && f < u64::MAX as f64).then_some(f as u64)
}

/// Only white space: Unicode's, and the information separators U+001C-U+001F
/// that Python (and so the schema's `[^\s]` pattern as clients check it) counts too.
fn blank(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

/// The single value of a text field (a scalar given twice is refused).
fn one(values: &[String]) -> Option<&str> {
    match values {
        [v] => Some(v),
        _ => None,
    }
}

const LENIENT_PADDING: base64::engine::GeneralPurposeConfig =
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent);
const BASE64: base64::engine::GeneralPurpose =
    base64::engine::GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT_PADDING);
const BASE64_URL_SAFE: base64::engine::GeneralPurpose =
    base64::engine::GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT_PADDING);

/// Decodes a data URI or bare standard base64 (whitespace tolerated).
pub fn decode_image_string(s: &str) -> Result<Vec<u8>, ApiError> {
    let s = s.trim();
    let payload = if let Some(rest) = s.strip_prefix("data:") {
        let Some((meta, data)) = rest.split_once(',') else {
            return Err(ApiError::invalid_image(
                "data URI has no ',' before its data",
            ));
        };
        if !meta.to_ascii_lowercase().ends_with(";base64") {
            return Err(ApiError::invalid_image(
                "data URI is not base64-encoded (expected data:image/...;base64,...)",
            ));
        }
        data
    } else {
        let looks_base64 = !s.is_empty()
            && s.bytes().all(|b| {
                b.is_ascii_alphanumeric() || b"+/=-_".contains(&b) || b.is_ascii_whitespace()
            });
        if !looks_base64 {
            return Err(ApiError::invalid_params(
                "field \"image\" must be a data URI (data:image/jpeg;base64,...) or base64",
            ));
        }
        s
    };
    let compact: Vec<u8> = payload
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let bytes = BASE64
        .decode(&compact)
        .or_else(|_| BASE64_URL_SAFE.decode(&compact))
        .map_err(|e| ApiError::invalid_image(format!("image is not valid base64: {e}")))?;
    if bytes.is_empty() {
        return Err(ApiError::invalid_image("image is empty"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::error::ErrorCode;

    #[test]
    fn image_strings() {
        let png = b"\x89PNG\r\n\x1a\nrest";
        let b64 = base64::engine::general_purpose::STANDARD.encode(png);
        assert_eq!(
            decode_image_string(&format!("data:image/png;base64,{b64}")).unwrap(),
            png
        );
        let wrapped: String = b64
            .as_bytes()
            .chunks(4)
            .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
            .collect();
        assert_eq!(decode_image_string(&wrapped).unwrap(), png);
        assert_eq!(
            decode_image_string("data:image/png;base64,@@@@")
                .unwrap_err()
                .code,
            ErrorCode::InvalidImageFormat
        );
        assert_eq!(
            decode_image_string("abcde").unwrap_err().code,
            ErrorCode::InvalidImageFormat
        );
        assert_eq!(
            decode_image_string("http://example.com/cat.jpg")
                .unwrap_err()
                .code,
            ErrorCode::InvalidParameters
        );
        assert_eq!(
            decode_image_string("").unwrap_err().code,
            ErrorCode::InvalidParameters
        );
    }
}
