//! What the device was asked for: one line per open, load and run, appended
//! to the file named by `FLORENCE_HAILO_STANDIN_TRACE` (when set), so tests
//! see the group, scheduler priority and timeout the engine passed through
//! the C ABI, the values a real HailoRT would act on.

use std::io::Write;

pub const TRACE_ENV: &str = "FLORENCE_HAILO_STANDIN_TRACE";

/// Appends `line` to the trace file; a trace that cannot be written is lost
/// (the device's behaviour never depends on it).
pub fn record(line: &str) {
    let Some(path) = std::env::var_os(TRACE_ENV) else {
        return;
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}
