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
