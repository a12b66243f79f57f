//! GET /: a page to try the service in a browser: choose or paste an image,
//! pick a task, see the answer and its regions drawn on the picture. Its
//! files are compiled into the binary; the page talks only to this
//! origin (its Content-Security-Policy says so), sends the API key a user
//! types in, and is subject to the same Host and Origin checks as the API.

use std::sync::LazyLock;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use gstflorence::engine::task::Task;

const HTML: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/page.js");
const STYLE: &str = include_str!("page/page.css");
const ICON: &str = include_str!("page/icon.svg");

/// Scripts, styles and requests from this origin only; images from the
/// user's own file (blob:).
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      img-src 'self' blob:; connect-src 'self'; form-action 'none'; \
                      frame-ancestors 'none'; base-uri 'none'";

/// The page with the engine's task list (the one place tasks are named).
static PAGE: LazyLock<String> = LazyLock::new(|| {
    let options: String = Task::ALL
        .iter()
        .map(|t| {
            let selected = if *t == Task::Od { " selected" } else { "" };
            format!(
                "<option value=\"{}\"{selected}>{}</option>",
                t.name(),
                t.token().replace('<', "&lt;").replace('>', "&gt;")
            )
        })
        .collect();
    HTML.replace("{{TASK_OPTIONS}}", &options)
});

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                        (header::CONTENT_SECURITY_POLICY, POLICY),
                    ],
                    PAGE.as_str(),
                )
                    .into_response()
            }),
        )
        .route(
            "/page/page.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    SCRIPT,
                )
            }),
        )
        .route(
            "/page/icon.svg",
            get(|| async { ([(header::CONTENT_TYPE, "image/svg+xml")], ICON) }),
        )
        .route(
            "/page/page.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }),
        )
}

/// Documents the page (served by [`router`]).
#[utoipa::path(
    get,
    path = "/",
    operation_id = "page",
    tag = "service",
    summary = "A page to try the service in a browser: an image, a task, the answer drawn (served from the binary)",
    responses((status = 200, description = "The page", content_type = "text/html", body = String))
)]
#[allow(dead_code)]
pub fn page() {}
