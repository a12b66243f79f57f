//! The routes of api-contract.md behind their middleware.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware;
use axum::routing::{get, post};

use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::http::{browser, docs, header_lines, inference, observe, openapi, page, service};

/// The routes behind their middleware; `listening` is the bound address (the
/// Host check depends on whether it is loopback).
pub fn router(st: Arc<AppState>, listening: SocketAddr) -> Router {
    let guard = Arc::new(browser::Guard::new(&st.config().http, listening));
    let cors = browser::cors(&st.config().http);
    let routes = Router::new()
        .route("/v1/caption", post(inference::caption))
        .route("/v1/vqa", post(inference::vqa))
        .route("/v1/tasks/{task}", post(inference::task))
        .route("/v1/caption/raw", post(inference::caption_raw))
        .route("/v1/vqa/raw", post(inference::vqa_raw))
        .route("/v1/tasks/{task}/raw", post(inference::task_raw))
        .route("/v1/analyze", post(inference::analyze))
        .route("/health", get(service::health))
        .route("/metrics", get(service::metrics))
        .route("/openapi.json", get(openapi::serve_document))
        .merge(docs::router())
        .merge(page::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(guard, browser::guard))
        // Before the Host and Origin checks: they read one line of each.
        .layer(middleware::from_fn(header_lines::refuse_repeated))
        .layer(middleware::from_fn_with_state(st.clone(), observe::observe));
    // Outermost, so that a preflight is answered before the API key check.
    match cors {
        Some(cors) => routes.layer(cors),
        None => routes,
    }
    .with_state(st)
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(req.uri().path())
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}
