//! The HTTP edge: the routes of api-contract.md and their middleware, the
//! request body and its parser, the OpenAPI document and /docs, the errors
//! and their statuses, and the connections under hyper.

pub mod body;
pub mod body_budget;
pub mod browser;
pub mod connections;
pub mod docs;
pub mod error;
pub mod header_lines;
pub mod inference;
pub mod observe;
pub mod openapi;
pub mod page;
pub mod peer;
pub mod rate_limit;
pub mod request;
pub mod routes;
pub mod schema;
pub mod service;
pub mod state;
