//! The middleware every request passes: its id, the API key, the rate limit,
//! the metrics and the one log line per request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::error::ApiError;
use crate::http::state::AppState;

#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// What an inference handler tells the observing middleware (for logs and metrics).
#[derive(Debug, Clone, Default)]
pub struct Served {
    pub inference_ms: Option<f64>,
    /// Of `inference_ms`, queued for turns on the shared model.
    pub model_wait_ms: Option<f64>,
    pub image_bytes: Option<usize>,
    pub caption_length: Option<usize>,
    /// Tasks that ran the vision encoder, and tasks that reused features.
    pub vision_encoded: u64,
    pub vision_reused: u64,
}

/// Constant-time comparison, so the key cannot be guessed byte by byte from timings.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0);
    }
    diff == 0
}

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(k) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(k.trim());
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = auth.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

fn client_request_id(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("x-request-id")?.to_str().ok()?.trim();
    (!v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)))
    .then(|| v.to_owned())
}

pub async fn observe(
    State(st): State<Arc<AppState>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let config = st.config();
    let id = client_request_id(req.headers()).unwrap_or_else(|| st.next_request_id());
    req.extensions_mut().insert(RequestId(id.clone()));
    let endpoint = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_owned(), |m| m.as_str().to_owned());
    let path = req.uri().path().to_owned();
    let inference_route = path.starts_with("/v1/");
    let protected = inference_route
        || (config.api_key_protects_health && (path == "/health" || path == "/metrics"));

    let mut resp = if let Some(key) = config.api_key.as_deref()
        && protected
        && !presented_key(req.headers()).is_some_and(|k| same_secret(k.as_bytes(), key.as_bytes()))
    {
        ApiError::unauthorized().into_response()
    } else if let Some(limiter) = st.limiter()
        && inference_route
        && let Err(retry) = limiter.check(addr.ip())
    {
        ApiError::rate_limited(retry).into_response()
    } else {
        next.run(req).await
    };

    let status = resp.status().as_u16();
    let served = resp
        .extensions()
        .get::<Served>()
        .cloned()
        .unwrap_or_default();
    let error = resp.extensions().get::<ApiError>().map(|e| e.code.as_str());
    let elapsed = start.elapsed();
    st.metrics.record(
        &endpoint,
        status,
        elapsed,
        served.inference_ms,
        served.model_wait_ms,
    );
    st.metrics
        .record_vision(served.vision_encoded, served.vision_reused);
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let duration_ms = (elapsed.as_secs_f64() * 1e4).round() / 10.0;
    let inference_time_ms = served.inference_ms.map(f64::round);
    if inference_route || (status >= 400 && status != 503) {
        let message = match error {
            None => "request served",
            Some("inference_failed") => "inference failed",
            Some(_) => "request refused",
        };
        macro_rules! log_at {
            ($level:ident) => {
                tracing::$level!(
                    request_id = %id,
                    endpoint = %endpoint,
                    status,
                    error = error,
                    client = %addr.ip(),
                    duration_ms,
                    inference_time_ms,
                    image_size_bytes = served.image_bytes,
                    caption_length = served.caption_length,
                    "{message}"
                )
            };
        }
        // A client's mistake (4xx) is not the service's problem: INFO, like a
        // success, so a fuzzing client cannot flood the warnings. 503 (loading,
        // overloaded, draining) is a warning: the service cannot serve.
        if status == 503 {
            log_at!(warn);
        } else if status >= 500 {
            log_at!(error);
        } else {
            log_at!(info);
        }
        if let Some(ms) = served.inference_ms
            && ms > config.slow_inference_ms
        {
            tracing::warn!(
                request_id = %id,
                endpoint = %endpoint,
                inference_time_ms = ms.round(),
                "slow inference: {:.0} ms (threshold {:.0} ms)",
                ms,
                config.slow_inference_ms
            );
        }
    } else {
        tracing::debug!(request_id = %id, endpoint = %endpoint, status, duration_ms, "request served");
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"", b"a"));
        assert!(!same_secret(b"a", b""));
    }
}
