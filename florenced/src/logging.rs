//! Logs on stderr (journald picks them up): one JSON object per line, or
//! human-readable text on a terminal. GStreamer's debug output and ONNX
//! Runtime's messages come through here too (targets `gstreamer`, `onnxruntime`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The tracing filter: the configured level, and when `GST_DEBUG` is set every
/// GStreamer event (GStreamer's own thresholds already chose them), unless the
/// level names the `gstreamer` target itself.
fn filter(level: &str, gst_debug: Option<&str>) -> EnvFilter {
    let mut filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    if gst_debug.is_some_and(|d| !d.trim().is_empty())
        && !level.contains("gstreamer")
        && let Ok(d) = "gstreamer=trace".parse()
    {
        filter = filter.add_directive(d);
    }
    filter
}

pub fn init(format: LogFormat, level: &str) {
    let stderr_is_terminal = std::io::stderr().is_terminal();
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !stderr_is_terminal,
    };
    let gst_debug = std::env::var("GST_DEBUG").ok();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter(level, gst_debug.as_deref()))
        .with_writer(std::io::stderr);
    let result = if json {
        // The target tells the daemon's lines from GStreamer's and ONNX Runtime's.
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init()
    } else {
        // Colours only for a person at a terminal, never into a pipe or a file.
        builder
            .with_target(false)
            .with_ansi(stderr_is_terminal)
            .try_init()
    };
    if let Err(e) = result {
        eprintln!("florenced: cannot set up logging: {e}");
    }
    crate::gst_log::route_to_tracing();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gst_debug_lets_gstreamer_events_through() {
        let f = filter("info", Some("florencecaption:5")).to_string();
        assert!(f.contains("gstreamer=trace"), "{f}");
        assert!(!filter("info", None).to_string().contains("gstreamer"));
        assert!(!filter("info", Some("")).to_string().contains("gstreamer"));
        let f = filter("info,gstreamer=warn", Some("*:5")).to_string();
        assert!(!f.contains("gstreamer=trace"), "{f}");
    }
}
