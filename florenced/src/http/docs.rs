//! GET /docs: Swagger UI for /openapi.json. Its files come from the
//! utoipa-swagger-ui-vendored crate and are compiled into the binary; nothing
//! is fetched at build or run time (the validator badge, which would call an
//! outside service, is off).

use axum::Router;
use utoipa_swagger_ui::{Config, SwaggerUi};

/// The routes of the page: /docs redirects to /docs/, which serves the page and its files.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::from(
        SwaggerUi::new("/docs").config(
            Config::new(["/openapi.json"])
                .validator_url("none")
                .try_it_out_enabled(true),
        ),
    )
}

/// Documents the page (the SwaggerUi router serves it).
#[utoipa::path(
    get,
    path = "/docs",
    operation_id = "docs",
    tag = "service",
    summary = "Interactive API page for /openapi.json (Swagger UI, served from the binary)",
    responses(
        (status = 200, description = "The page (after the redirect to /docs/)", content_type = "text/html", body = String),
        (status = 303, description = "Redirect to /docs/", headers(("Location" = String, description = "/docs/"))),
    )
)]
#[allow(dead_code)]
pub fn docs_page() {}
