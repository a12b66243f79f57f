//! The HTTP edge: the routes of api-contract.md and their middleware, the
//! request parser and body limits, the OpenAPI document and /docs, the errors
//! and their statuses, and the connection handling under hyper.

pub mod body_budget;
pub mod browser;
pub mod connections;
pub mod docs;
pub mod error;
pub mod header_lines;
pub mod inference;
pub mod openapi;
pub mod peer;
pub mod request;
pub mod schema;
