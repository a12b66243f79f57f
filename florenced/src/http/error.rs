//! The one error type of the HTTP API and its JSON shape
//! (`{"error": code, "message": text, "status": n}`): each code mapped to
//! its status in one place ([`ErrorCode::status`]). A request the element
//! answered with an error gets its answer from that error's kind in one place
//! too ([`ApiError::for_kind`]; `inference::job_error` adds the log line).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gstflorence::protocol::ErrorKind;
use utoipa::ToSchema;

// The codes of api-contract.md, and the one place each gets its HTTP status:
// every error the daemon answers is an `ApiError` with one of these, and the
// OpenAPI document lists them and their statuses from here too.
/// What went wrong (`error` of every error answer); each code has one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidImageFormat,
    ImageTooLarge,
    InvalidParameters,
    Unauthorized,
    RateLimited,
    InferenceFailed,
    VqaNotConfigured,
    ModelNotReady,
    DeviceError,
    Overloaded,
    Timeout,
    NotFound,
    MethodNotAllowed,
    UnsupportedMediaType,
    BodyTimeout,
    MisdirectedRequest,
    ForbiddenOrigin,
    BadRequest,
    /// Log and metrics only: nobody reads the answer of a client that went away.
    #[serde(skip)]
    ClientDisconnected,
}

impl ErrorCode {
    /// Every code a client can be answered with.
    pub const ANSWERED: [ErrorCode; 18] = [
        ErrorCode::InvalidImageFormat,
        ErrorCode::ImageTooLarge,
        ErrorCode::InvalidParameters,
        ErrorCode::Unauthorized,
        ErrorCode::RateLimited,
        ErrorCode::InferenceFailed,
        ErrorCode::VqaNotConfigured,
        ErrorCode::ModelNotReady,
        ErrorCode::DeviceError,
        ErrorCode::Overloaded,
        ErrorCode::Timeout,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::BodyTimeout,
        ErrorCode::MisdirectedRequest,
        ErrorCode::ForbiddenOrigin,
        ErrorCode::BadRequest,
    ];

    /// The HTTP status of this code (api-contract.md's table).
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::InvalidImageFormat | ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::ForbiddenOrigin => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::ImageTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::MisdirectedRequest => StatusCode::MISDIRECTED_REQUEST,
            ErrorCode::InvalidParameters => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::ClientDisconnected => {
                StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST)
            }
            ErrorCode::InferenceFailed => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::VqaNotConfigured => StatusCode::NOT_IMPLEMENTED,
            ErrorCode::ModelNotReady | ErrorCode::DeviceError | ErrorCode::Overloaded => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The code as the `error` field spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidImageFormat => "invalid_image_format",
            ErrorCode::ImageTooLarge => "image_too_large",
            ErrorCode::InvalidParameters => "invalid_parameters",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::InferenceFailed => "inference_failed",
            ErrorCode::VqaNotConfigured => "vqa_not_configured",
            ErrorCode::ModelNotReady => "model_not_ready",
            ErrorCode::DeviceError => "device_error",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Timeout => "timeout",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::BodyTimeout => "body_timeout",
            ErrorCode::MisdirectedRequest => "misdirected_request",
            ErrorCode::ForbiddenOrigin => "forbidden_origin",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::ClientDisconnected => "client_disconnected",
        }
    }

    /// Whether the answer has Retry-After.
    pub fn retries(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimited
                | ErrorCode::ModelNotReady
                | ErrorCode::DeviceError
                | ErrorCode::Overloaded
        )
    }

    /// When the code is answered, for the OpenAPI document.
    pub fn meaning(self) -> &'static str {
        match self {
            ErrorCode::InvalidImageFormat => {
                "not base64, not a supported image, or truncated/corrupt"
            }
            ErrorCode::ImageTooLarge => {
                "the body (from its Content-Length when it has one), the decoded image or its dimensions are over a limit (the message says which)"
            }
            ErrorCode::InvalidParameters => {
                "a missing, wrong-typed or out-of-range field, or text whose tokens do not fit"
            }
            ErrorCode::Unauthorized => {
                "an API key is configured and the request's is missing or wrong"
            }
            ErrorCode::RateLimited => "this client's rate limit is exceeded",
            ErrorCode::InferenceFailed => "the model failed; the detail is in the log",
            ErrorCode::VqaNotConfigured => "the model has no VQA support configured",
            ErrorCode::ModelNotReady => "the model is loading, or the service is shutting down",
            ErrorCode::DeviceError => "the accelerator is not accessible",
            ErrorCode::Overloaded => "the queue is full, or `http.body_bytes_in_flight` is taken",
            ErrorCode::Timeout => "the request waited or ran past `request_timeout_s`",
            ErrorCode::NotFound => "no such route",
            ErrorCode::MethodNotAllowed => "the route takes another method",
            ErrorCode::UnsupportedMediaType => {
                "the Content-Type is not JSON (`application/json` or `+json`), `multipart/form-data` or `image/*` (JSON only for /v1/analyze, `image/*` only for the `/raw` operations)"
            }
            ErrorCode::BodyTimeout => "the body did not arrive within `http.body_read_timeout_s`",
            ErrorCode::MisdirectedRequest => {
                "a Host this service does not answer for (loopback names and `http.allowed_hosts`)"
            }
            ErrorCode::ForbiddenOrigin => {
                "a browser request from a page whose origin is not allowed (`http.cors_allow_origins`)"
            }
            ErrorCode::BadRequest => {
                "broken HTTP: an HTTP/1.1 request without Host, a repeated Host, Content-Type, Authorization, X-API-Key or Origin line, or a body that ends before its Content-Length"
            }
            ErrorCode::ClientDisconnected => "the client went away before its answer",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// The answer to a request the element (or the pipeline running it)
    /// failed with `kind`: the one mapping from the protocol's error kinds
    /// (made from the engine's errors in `ErrorKind::of`) to a code and so a
    /// status. Only an invalid request's `message` reaches the client; the
    /// others have the contract's generic message.
    pub fn for_kind(kind: ErrorKind, message: String) -> Self {
        match kind {
            ErrorKind::InvalidRequest => ApiError::invalid_params(message),
            ErrorKind::InferenceFailed => ApiError::inference_failed(),
            ErrorKind::TimedOut => ApiError::timeout(),
            // Only sent for a client that went away: nobody reads this.
            ErrorKind::Cancelled => ApiError::not_ready("the request was cancelled"),
            ErrorKind::DeviceBusy | ErrorKind::Device => ApiError::device_error(),
        }
    }

    pub fn invalid_image(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidImageFormat, message)
    }
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ImageTooLarge, message)
    }
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameters, message)
    }
    pub fn unauthorized() -> Self {
        Self::new(
            ErrorCode::Unauthorized,
            "missing or wrong API key (X-API-Key or Authorization: Bearer)",
        )
    }
    pub fn rate_limited(retry_after: u64) -> Self {
        Self::new(
            ErrorCode::RateLimited,
            "too many requests from this client; retry later",
        )
        .retry(retry_after)
    }
    pub fn inference_failed() -> Self {
        Self::new(
            ErrorCode::InferenceFailed,
            "the model failed on this request",
        )
    }
    pub fn vqa_not_configured() -> Self {
        Self::new(
            ErrorCode::VqaNotConfigured,
            "visual question answering is not configured for this model/backend",
        )
    }
    pub fn not_ready(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ModelNotReady, message).retry(5)
    }
    pub fn device_error() -> Self {
        Self::new(ErrorCode::DeviceError, "the accelerator is not accessible").retry(10)
    }
    pub fn overloaded(retry_after: u64) -> Self {
        Self::new(
            ErrorCode::Overloaded,
            "the request queue is full; retry later",
        )
        .retry(retry_after)
    }
    pub fn timeout() -> Self {
        Self::new(
            ErrorCode::Timeout,
            "the request waited or ran past the configured timeout",
        )
    }
    pub fn not_found(path: &str) -> Self {
        Self::new(
            ErrorCode::NotFound,
            format!("no route {path}; see /openapi.json"),
        )
    }
    pub fn method_not_allowed() -> Self {
        Self::new(
            ErrorCode::MethodNotAllowed,
            "method not allowed on this route; see /openapi.json",
        )
    }

    /// A body that is neither JSON (with a JSON media type), a form nor an image.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::UnsupportedMediaType, message)
    }
    /// The body did not arrive within `http.body_read_timeout_s`.
    pub fn body_timeout() -> Self {
        Self::new(
            ErrorCode::BodyTimeout,
            "the request body did not arrive in time (http.body_read_timeout_s)",
        )
    }
    /// Every body slot of `http.body_bytes_in_flight` is taken.
    pub fn bodies_overloaded(retry_after: u64) -> Self {
        Self::new(
            ErrorCode::Overloaded,
            "too many request bodies are being received at once; retry later",
        )
        .retry(retry_after)
    }
    /// A Host this daemon does not answer for (DNS rebinding, or a name missing
    /// from `http.allowed_hosts`).
    pub fn misdirected(host: &str) -> Self {
        Self::new(
            ErrorCode::MisdirectedRequest,
            format!("this service does not answer for host {host:?} (http.allowed_hosts)"),
        )
    }
    /// A request that HTTP itself forbids (an HTTP/1.1 request without Host or
    /// with two, a body shorter than its Content-Length).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
    /// A browser request from a page whose origin is not allowed.
    pub fn forbidden_origin(origin: &str) -> Self {
        Self::new(
            ErrorCode::ForbiddenOrigin,
            format!("requests from origin {origin:?} are not allowed (http.cors_allow_origins)"),
        )
    }
    /// The client went away before its answer: nobody reads this; the log and
    /// the metrics use nginx's 499.
    pub fn client_gone() -> Self {
        Self::new(
            ErrorCode::ClientDisconnected,
            "the client disconnected before its answer",
        )
    }

    pub fn retry(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": self.code.as_str(),
            "message": self.message,
            "status": self.status().as_u16(),
        });
        let mut resp = (self.status(), axum::Json(body)).into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        // The rest of an unread body would be read as the next request: close.
        if matches!(self.code, ErrorCode::BodyTimeout | ErrorCode::ImageTooLarge) {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if self.code == ErrorCode::Unauthorized {
            // RFC 9110: a 401 names the scheme that would be accepted.
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"florenced\""),
            );
        }
        resp.extensions_mut().insert(self);
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `as_str` spells each code as the document's enum does (serde's snake_case
    /// of the variant), and no two codes share a spelling.
    #[test]
    fn codes_are_spelled_as_documented() {
        let mut seen = std::collections::BTreeSet::new();
        for code in ErrorCode::ANSWERED
            .into_iter()
            .chain([ErrorCode::ClientDisconnected])
        {
            let mut snake = String::new();
            for (i, ch) in format!("{code:?}").chars().enumerate() {
                if ch.is_ascii_uppercase() && i > 0 {
                    snake.push('_');
                }
                snake.push(ch.to_ascii_lowercase());
            }
            assert_eq!(code.as_str(), snake);
            assert!(seen.insert(code.as_str()), "{code:?} twice");
        }
        assert_eq!(
            ErrorCode::ImageTooLarge.status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(ErrorCode::BadRequest.status(), StatusCode::BAD_REQUEST);
        assert_eq!(ErrorCode::ClientDisconnected.status().as_u16(), 499);
    }
}
