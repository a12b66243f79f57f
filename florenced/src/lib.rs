//! florenced's modules as a library: the `florenced` binary (main.rs) is
//! built on it, and the fuzz targets (fuzz/) reach the real request parser and
//! configuration loader through it. Not a stable API.

pub mod api;
pub mod bench;
pub mod body_budget;
pub mod browser;
pub mod config;
pub mod connections;
pub mod docs;
pub mod error;
pub mod gst_log;
pub mod header_lines;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod openapi;
pub mod peer;
pub mod pool;
pub mod pull;
pub mod reload;
pub mod request;
pub mod schema;
pub mod serve;
pub mod worker;
