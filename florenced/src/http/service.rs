//! The service's own routes: /health and /metrics.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::config::BackendChoice;
use crate::http::error::ApiError;
use crate::http::schema;
use crate::http::state::AppState;
use crate::worker::Health;
use gstflorence::engine::BackendKind;

fn cpu_temperature_c() -> Option<f64> {
    let raw = std::fs::read_to_string("/sys/class/thermal/thermal_zone0/temp").ok()?;
    let milli: f64 = raw.trim().parse().ok()?;
    Some((milli / 100.0).round() / 10.0)
}

#[utoipa::path(
    get,
    path = "/health",
    operation_id = "health",
    tag = "service",
    summary = "Service health",
    responses(
        (status = 200, description = "Ready to serve", body = schema::Health),
        (status = 503, description = "Loading, failed or shutting down (`error` says why)", body = schema::Health),
    )
)]
pub(crate) async fn health(State(st): State<Arc<AppState>>) -> Response {
    let w = st.workers.get();
    let failed = st.load_error.lock().clone();
    let state = if st.draining.load(Ordering::SeqCst) {
        Health::Stopping
    } else if let Some(e) = failed {
        Health::Failed(e)
    } else {
        w.as_ref().map_or(Health::Loading, |w| w.health())
    };
    let hailo = w
        .as_ref()
        .map_or(st.config().backend == BackendChoice::Hailo, |w| {
            w.kind().has_device()
        });
    // A device that failed is reopened by the next request; until one succeeds
    // the service is not healthy.
    let device = w.as_ref().map(|w| w.hailo_device());
    let disconnected = hailo && device.as_deref() == Some("disconnected");
    let (status, error) = match &state {
        Health::Ready if disconnected => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("the Hailo device failed; the next request reopens it".to_owned()),
        ),
        Health::Ready => (StatusCode::OK, None),
        Health::Loading => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("the model is loading".to_owned()),
        ),
        Health::Stopping => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("the service is shutting down".to_owned()),
        ),
        Health::Failed(reason) => (StatusCode::SERVICE_UNAVAILABLE, Some(reason.clone())),
    };
    let body = schema::Health {
        status: if state == Health::Ready && !disconnected {
            schema::HealthStatus::Healthy
        } else {
            schema::HealthStatus::Unhealthy
        },
        model_loaded: state == Health::Ready,
        uptime_seconds: st.metrics.uptime().as_secs(),
        version: env!("CARGO_PKG_VERSION"),
        hailo_device: match (hailo, &state) {
            (false, _) => schema::HailoDevice::NotUsed,
            (true, Health::Ready) if !disconnected => schema::HailoDevice::Connected,
            (true, _) => schema::HailoDevice::Disconnected,
        },
        backend: if hailo {
            BackendKind::Hailo
        } else {
            BackendKind::Onnx
        }
        .name(),
        backend_reason: w
            .as_ref()
            .map(|w| w.backend_reason())
            .filter(|r| !r.is_empty()),
        execution_provider: w
            .as_ref()
            .map(|w| w.execution_provider())
            .filter(|p| !p.is_empty()),
        model_variant: w.map(|w| w.model_variant.clone()),
        queue_depth: st.gauges().queue_depth,
        cpu_temperature_c: cpu_temperature_c(),
        error,
        reload_error: st.reload_error.lock().clone(),
    };
    (status, axum::Json(body)).into_response()
}

/// Prometheus text or JSON: `format` decides, else Accept; an unknown format is 422.
fn wants_prometheus(headers: &HeaderMap, query: Option<&str>) -> Result<bool, ApiError> {
    if let Some(q) = query {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            if k == "format" {
                return match &*v {
                    "prometheus" => Ok(true),
                    "json" => Ok(false),
                    _ => Err(ApiError::invalid_params(
                        "format must be json or prometheus",
                    )),
                };
            }
        }
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    Ok(accept.contains("text/plain") || accept.contains("application/openmetrics-text"))
}

#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "service",
    summary = "Metrics: JSON, or Prometheus text for Accept: text/plain (or application/openmetrics-text) or ?format=prometheus",
    params(schema::MetricsQuery),
    responses(
        (status = 200, description = "The metrics", content(
            (schema::MetricsSummary = "application/json"),
            (String = "text/plain"),
        )),
        (status = 422, description = "`invalid_parameters`: an unknown format", body = schema::Error),
    )
)]
pub(crate) async fn metrics(State(st): State<Arc<AppState>>, req: Request) -> Response {
    let g = st.gauges();
    let prometheus = match wants_prometheus(req.headers(), req.uri().query()) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if prometheus {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            st.metrics.prometheus(&g),
        )
            .into_response()
    } else {
        axum::Json(st.metrics.json(&g)).into_response()
    }
}
