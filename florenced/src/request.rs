//! Turning an HTTP request into an image and validated parameters: JSON
//! (data URI or bare base64), multipart/form-data, or a raw image body with
//! the parameters in the query string.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{FromRequest, Multipart};
use axum::http::{HeaderMap, Request, header};
use base64::Engine as _;
use serde_json::Value;

use crate::config::Config;
use crate::error::ApiError;
use crate::worker::Params;

/// One request field as it arrived.
#[derive(Debug, Clone)]
pub enum Field {
    Json(Value),
    Text(String),
    Bytes(Vec<u8>),
}

#[derive(Debug, Default)]
pub struct Fields {
    map: BTreeMap<String, Field>,
}

/// Reads the whole body, refusing more than `limit` bytes with 413.
pub async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(s) = source {
            if s.is::<http_body_util::LengthLimitError>() {
                return ApiError::too_large(format!(
                    "request body is larger than the limit of {limit} bytes"
                ));
            }
            source = s.source();
        }
        ApiError::invalid_params(format!("cannot read the request body: {e}"))
    })
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase()
}

impl Fields {
    /// Parses a request body of any accepted content type; `query` is the raw query string.
    pub async fn parse(
        headers: &HeaderMap,
        query: Option<&str>,
        body: axum::body::Bytes,
    ) -> Result<Fields, ApiError> {
        let ct = content_type(headers);
        let mut fields = Fields::default();
        if ct.starts_with("multipart/form-data") {
            let mut req = Request::new(Body::from(body));
            *req.headers_mut() = headers.clone();
            let mut mp = Multipart::from_request(req, &())
                .await
                .map_err(|e| ApiError::invalid_params(format!("bad multipart body: {e}")))?;
            loop {
                let field = mp
                    .next_field()
                    .await
                    .map_err(|e| ApiError::invalid_params(format!("bad multipart body: {e}")))?;
                let Some(field) = field else { break };
                let name = field.name().unwrap_or_default().to_owned();
                let is_file = field.file_name().is_some() || name == "image" || name == "file";
                let data = field
                    .bytes()
                    .await
                    .map_err(|e| ApiError::invalid_params(format!("bad multipart part: {e}")))?;
                let value = if is_file {
                    Field::Bytes(data.to_vec())
                } else {
                    Field::Text(String::from_utf8_lossy(&data).into_owned())
                };
                let key = if name == "file" { "image".into() } else { name };
                fields.map.insert(key, value);
            }
        } else if ct.starts_with("image/") {
            fields
                .map
                .insert("image".into(), Field::Bytes(body.to_vec()));
        } else if ct.starts_with("application/x-www-form-urlencoded")
            && !body.trim_ascii_start().starts_with(b"{")
        {
            for (k, v) in form_urlencoded::parse(&body) {
                fields
                    .map
                    .insert(k.into_owned(), Field::Text(v.into_owned()));
            }
        } else if ct.is_empty()
            || ct.starts_with("application/json")
            || ct.ends_with("+json")
            // `curl -d '{...}'` labels JSON as a form.
            || ct.starts_with("application/x-www-form-urlencoded")
        {
            let v: Value = serde_json::from_slice(&body)
                .map_err(|e| ApiError::invalid_params(format!("body is not valid JSON: {e}")))?;
            let Value::Object(obj) = v else {
                return Err(ApiError::invalid_params(
                    "body must be a JSON object with an \"image\" field",
                ));
            };
            for (k, v) in obj {
                if !v.is_null() {
                    fields.map.insert(k, Field::Json(v));
                }
            }
        } else {
            return Err(ApiError::invalid_params(format!(
                "unsupported content type {ct:?}; send application/json, multipart/form-data or an image/* body"
            )));
        }
        // Query parameters never override the body.
        if let Some(q) = query {
            for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                fields
                    .map
                    .entry(k.into_owned())
                    .or_insert(Field::Text(v.into_owned()));
            }
        }
        Ok(fields)
    }

    fn get(&self, name: &str) -> Option<&Field> {
        self.map.get(name)
    }

    /// The encoded image bytes.
    pub fn image(&self) -> Result<Vec<u8>, ApiError> {
        match self.get("image") {
            None => Err(ApiError::invalid_params("missing field \"image\"")),
            Some(Field::Bytes(b)) if b.is_empty() => {
                Err(ApiError::invalid_params("field \"image\" is empty"))
            }
            Some(Field::Bytes(b)) => Ok(b.clone()),
            Some(Field::Json(Value::String(s)) | Field::Text(s)) => decode_image_string(s),
            Some(Field::Json(_)) => Err(ApiError::invalid_params(
                "field \"image\" must be a string (data URI or base64)",
            )),
        }
    }

    fn int(&self, name: &str, min: u64, max: u64) -> Result<Option<u64>, ApiError> {
        let bad =
            || ApiError::invalid_params(format!("{name} must be an integer in {min}..={max}"));
        let v = match self.get(name) {
            None => return Ok(None),
            Some(Field::Json(Value::Number(n))) => match (n.as_u64(), n.as_f64()) {
                (Some(v), _) => v,
                (None, Some(f)) if f.fract() == 0.0 && f >= 0.0 && f <= u64::MAX as f64 => f as u64,
                _ => return Err(bad()),
            },
            Some(Field::Json(Value::String(s)) | Field::Text(s)) => {
                s.trim().parse::<u64>().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
        };
        if v < min || v > max {
            return Err(bad());
        }
        Ok(Some(v))
    }

    fn float(&self, name: &str, min: f64, max: f64) -> Result<Option<f64>, ApiError> {
        let bad = || ApiError::invalid_params(format!("{name} must be a number in {min}..={max}"));
        let v = match self.get(name) {
            None => return Ok(None),
            Some(Field::Json(Value::Number(n))) => n.as_f64().ok_or_else(bad)?,
            Some(Field::Json(Value::String(s)) | Field::Text(s)) => {
                s.trim().parse::<f64>().map_err(|_| bad())?
            }
            Some(_) => return Err(bad()),
        };
        if !v.is_finite() || v < min || v > max {
            return Err(bad());
        }
        Ok(Some(v))
    }

    pub fn string(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Field::Json(Value::String(s)) | Field::Text(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::invalid_params(format!("{name} must be a string"))),
        }
    }

    fn region(&self) -> Result<Option<[f64; 4]>, ApiError> {
        let bad = || {
            ApiError::invalid_params("region must be [x1, y1, x2, y2] in image pixels (4 numbers)")
        };
        let values: Vec<f64> = match self.get("region") {
            None => return Ok(None),
            Some(Field::Json(Value::Array(a))) => a
                .iter()
                .map(|v| v.as_f64().ok_or_else(bad))
                .collect::<Result<_, _>>()?,
            Some(Field::Json(Value::String(s)) | Field::Text(s)) => s
                .trim()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .split(',')
                .map(|p| p.trim().parse::<f64>().map_err(|_| bad()))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(bad()),
        };
        match values[..] {
            [a, b, c, d] if values.iter().all(|v| v.is_finite()) => Ok(Some([a, b, c, d])),
            _ => Err(bad()),
        }
    }

    /// The generation parameters shared by every inference route, with the
    /// configured defaults and bounds.
    pub fn params(&self, task: &str, config: &Config) -> Result<Params, ApiError> {
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
        Ok(Params {
            task: task.to_owned(),
            text: None,
            region: self.region()?,
            max_new_tokens: max_length,
            min_new_tokens: min_length,
            num_beams,
            temperature,
            seed,
        })
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
            "invalid_image_format"
        );
        assert_eq!(
            decode_image_string("abcde").unwrap_err().code,
            "invalid_image_format"
        );
        assert_eq!(
            decode_image_string("http://example.com/cat.jpg")
                .unwrap_err()
                .code,
            "invalid_parameters"
        );
        assert_eq!(
            decode_image_string("").unwrap_err().code,
            "invalid_parameters"
        );
    }
}
