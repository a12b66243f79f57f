//! The one error type of the HTTP API and its JSON shape
//! (`{"error": code, "message": text, "status": n}`), mapped to status in one place.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: &'static str,
    pub status: StatusCode,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(code: &'static str, status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn invalid_image(message: impl Into<String>) -> Self {
        Self::new("invalid_image_format", StatusCode::BAD_REQUEST, message)
    }
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new("image_too_large", StatusCode::PAYLOAD_TOO_LARGE, message)
    }
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(
            "invalid_parameters",
            StatusCode::UNPROCESSABLE_ENTITY,
            message,
        )
    }
    pub fn unauthorized() -> Self {
        Self::new(
            "unauthorized",
            StatusCode::UNAUTHORIZED,
            "missing or wrong API key (X-API-Key or Authorization: Bearer)",
        )
    }
    pub fn rate_limited(retry_after: u64) -> Self {
        Self::new(
            "rate_limited",
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests from this client; retry later",
        )
        .retry(retry_after)
    }
    pub fn inference_failed() -> Self {
        Self::new(
            "inference_failed",
            StatusCode::INTERNAL_SERVER_ERROR,
            "the model failed on this request",
        )
    }
    pub fn vqa_not_configured() -> Self {
        Self::new(
            "vqa_not_configured",
            StatusCode::NOT_IMPLEMENTED,
            "visual question answering is not configured for this model/backend",
        )
    }
    pub fn not_ready(message: impl Into<String>) -> Self {
        Self::new("model_not_ready", StatusCode::SERVICE_UNAVAILABLE, message).retry(5)
    }
    pub fn device_error() -> Self {
        Self::new(
            "device_error",
            StatusCode::SERVICE_UNAVAILABLE,
            "the accelerator is not accessible",
        )
        .retry(10)
    }
    pub fn overloaded(retry_after: u64) -> Self {
        Self::new(
            "overloaded",
            StatusCode::SERVICE_UNAVAILABLE,
            "the request queue is full; retry later",
        )
        .retry(retry_after)
    }
    pub fn timeout() -> Self {
        Self::new(
            "timeout",
            StatusCode::GATEWAY_TIMEOUT,
            "the request waited or ran past the configured timeout",
        )
    }
    pub fn not_found(path: &str) -> Self {
        Self::new(
            "not_found",
            StatusCode::NOT_FOUND,
            format!("no route {path}; see /openapi.json"),
        )
    }
    pub fn method_not_allowed() -> Self {
        Self::new(
            "method_not_allowed",
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed on this route; see /openapi.json",
        )
    }

    /// A body that is neither JSON (with a JSON media type), a form nor an image.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(
            "unsupported_media_type",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message,
        )
    }
    /// The body did not arrive within `http.body_read_timeout_s`.
    pub fn body_timeout() -> Self {
        Self::new(
            "body_timeout",
            StatusCode::REQUEST_TIMEOUT,
            "the request body did not arrive in time (http.body_read_timeout_s)",
        )
    }
    /// Every body slot of `http.body_bytes_in_flight` is taken.
    pub fn bodies_overloaded(retry_after: u64) -> Self {
        Self::new(
            "overloaded",
            StatusCode::SERVICE_UNAVAILABLE,
            "too many request bodies are being received at once; retry later",
        )
        .retry(retry_after)
    }
    /// A Host this daemon does not answer for (DNS rebinding, or a name missing
    /// from `http.allowed_hosts`).
    pub fn misdirected(host: &str) -> Self {
        Self::new(
            "misdirected_request",
            StatusCode::MISDIRECTED_REQUEST,
            format!("this service does not answer for host {host:?} (http.allowed_hosts)"),
        )
    }
    /// A request that HTTP itself forbids (an HTTP/1.1 request without Host or
    /// with two, a body shorter than its Content-Length).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new("bad_request", StatusCode::BAD_REQUEST, message)
    }
    /// A browser request from a page whose origin is not allowed.
    pub fn forbidden_origin(origin: &str) -> Self {
        Self::new(
            "forbidden_origin",
            StatusCode::FORBIDDEN,
            format!("requests from origin {origin:?} are not allowed (http.cors_allow_origins)"),
        )
    }
    /// The client went away before its answer: nobody reads this; the log and
    /// the metrics use nginx's 499.
    pub fn client_gone() -> Self {
        Self::new(
            "client_disconnected",
            StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
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
            "error": self.code,
            "message": self.message,
            "status": self.status.as_u16(),
        });
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        // The rest of an unread body would be read as the next request: close.
        if matches!(
            self.status,
            StatusCode::REQUEST_TIMEOUT | StatusCode::PAYLOAD_TOO_LARGE
        ) {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
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
