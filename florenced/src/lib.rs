//! florenced's modules as a library: the `florenced` binary (main.rs) is
//! built on it, and the fuzz targets (fuzz/) reach the real request parser and
//! configuration loader through it. Not a stable API.

pub mod bench;
pub mod config;
pub mod drawings;
pub mod gst_log;
pub mod http;
pub mod lifecycle;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod pool;
pub mod pull;
pub mod reload;
pub mod serve;
pub mod worker;
