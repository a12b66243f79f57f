//! A request body as bytes: its kind from the Content-Type, its size limits
//! (from `max_image_bytes`), and reading it within them, the body budget and
//! the body timeout.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, header};

use crate::http::body_budget::{BodyBudget, BodyPermit};
use crate::http::error::ApiError;

/// What kind of body a request carries, from its Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Json,
    Multipart,
    RawImage,
}

impl BodyKind {
    /// JSON only with a JSON media type: a browser may send `text/plain` or a
    /// form type cross-origin without asking, so those are refused (415).
    pub fn of(headers: &HeaderMap) -> Result<BodyKind, ApiError> {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let essence = ct.split(';').next().unwrap_or("").trim();
        if essence == "application/json" || essence.ends_with("+json") {
            Ok(BodyKind::Json)
        } else if essence == "multipart/form-data" {
            Ok(BodyKind::Multipart)
        } else if essence.starts_with("image/") {
            Ok(BodyKind::RawImage)
        } else {
            let got = if essence.is_empty() {
                "no Content-Type".to_owned()
            } else {
                format!("Content-Type {essence:?}")
            };
            Err(ApiError::unsupported_media_type(format!(
                "{got}: send JSON as Content-Type: application/json, a form as \
                 multipart/form-data, or an image/* body (image/jpeg, image/png, image/webp, image/bmp)"
            )))
        }
    }
}

/// The size limits of a request, derived from `max_image_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// Decoded image bytes (`max_image_bytes`); also the raw body limit.
    pub image: usize,
    /// A JSON or multipart body: the image as base64 plus room for the other fields.
    pub encoded: usize,
}

/// Room for the fields next to the image in a JSON or multipart body.
const FIELDS_ROOM: usize = 64 * 1024;

impl BodyLimits {
    pub fn new(max_image_bytes: usize) -> BodyLimits {
        BodyLimits {
            image: max_image_bytes,
            encoded: max_image_bytes
                .div_ceil(3)
                .saturating_mul(4)
                .saturating_add(FIELDS_ROOM),
        }
    }

    fn body(&self, kind: BodyKind) -> usize {
        match kind {
            BodyKind::RawImage => self.image,
            BodyKind::Json | BodyKind::Multipart => self.encoded,
        }
    }

    fn body_too_large(&self, kind: BodyKind, size: Option<u64>) -> ApiError {
        let size = size.map_or_else(|| "larger than".to_owned(), |n| format!("{n} bytes; over"));
        ApiError::too_large(match kind {
            BodyKind::RawImage => format!(
                "request body is {size} the raw image limit of {} bytes (max_image_bytes)",
                self.image
            ),
            _ => format!(
                "request body is {size} the body limit of {} bytes (an image of max_image_bytes = {} as base64, plus {} bytes for the other fields)",
                self.encoded, self.image, FIELDS_ROOM
            ),
        })
    }

    /// The largest body of any kind.
    pub fn largest(&self) -> usize {
        self.image.max(self.encoded)
    }

    /// The decoded image against `max_image_bytes`.
    pub fn check_image(&self, n: usize) -> Result<(), ApiError> {
        if n > self.image {
            return Err(ApiError::too_large(format!(
                "image is {n} bytes; over the image limit of {} bytes (max_image_bytes)",
                self.image
            )));
        }
        Ok(())
    }
}

/// How a body may be read: its size limits, the shared byte budget, and the
/// time it may take.
pub struct BodyIntake<'a> {
    pub limits: BodyLimits,
    pub budget: &'a BodyBudget,
    pub timeout: Duration,
}

/// Reads the whole body within the limit for its kind, its share of the body
/// budget and the body timeout. An over-limit Content-Length is refused from
/// the header, before any of the body is read (so `Expect: 100-continue` gets
/// no `100 Continue`, and a short body declaring it gets 413); so is a body
/// the budget cannot hold now (503 with Retry-After). The permit keeps the
/// body's share until the caller drops it.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    kind: BodyKind,
    intake: &BodyIntake<'_>,
) -> Result<(axum::body::Bytes, BodyPermit), ApiError> {
    let limits = &intake.limits;
    let limit = limits.body(kind);
    let declared = match headers.get(header::CONTENT_LENGTH) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::bad_request("Content-Length is not a number"))?,
        ),
    };
    if let Some(n) = declared
        && n > limit as u64
    {
        return Err(limits.body_too_large(kind, Some(n)));
    }
    // A chunked body may grow to the limit: it reserves all of it.
    let reserve = declared.map_or(limit, |n| n as usize);
    let permit = intake
        .budget
        .try_reserve(reserve)
        .ok_or_else(|| ApiError::bodies_overloaded(1))?;
    let read = axum::body::to_bytes(body, limit);
    let bytes = match tokio::time::timeout(intake.timeout, read).await {
        Err(_) => return Err(ApiError::body_timeout()),
        Ok(r) => r.map_err(|e| body_error(&e, kind, limits, declared))?,
    };
    Ok((bytes, permit))
}

/// Why a body could not be read: over its limit (413), or HTTP framing that
/// is broken (400 `bad_request`): a body that ends before its Content-Length,
/// or a malformed chunk.
fn body_error(
    e: &axum::Error,
    kind: BodyKind,
    limits: &BodyLimits,
    declared: Option<u64>,
) -> ApiError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return limits.body_too_large(kind, None);
        }
        if let (Some(io), Some(n)) = (s.downcast_ref::<std::io::Error>(), declared)
            && io.kind() == std::io::ErrorKind::UnexpectedEof
        {
            return ApiError::bad_request(format!(
                "the request body ended before its Content-Length of {n} bytes"
            ));
        }
        source = s.source();
    }
    ApiError::bad_request(format!("the request body is malformed: {e}"))
}
