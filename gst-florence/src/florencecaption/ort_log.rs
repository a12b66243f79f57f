//! ONNX Runtime's messages in GStreamer's debug log.
//!
//! The engine reports ONNX Runtime's messages as `tracing` events (target
//! `onnxruntime`), which a program like florenced routes into its own logs.
//! Under gst-launch-1.0 or any application without a `tracing` subscriber
//! they would be lost, so the element runs its model calls (load, inference)
//! with a thread-local subscriber that writes them to the `onnxruntime` debug
//! category (`GST_DEBUG=onnxruntime:5`). A process that installed a global
//! subscriber keeps it.

use std::fmt::Write as _;
use std::sync::LazyLock;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

pub(super) static ORT_CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "onnxruntime",
        gst::DebugColorFlags::empty(),
        Some("ONNX Runtime messages (through florencecaption)"),
    )
});

static DISPATCH: LazyLock<tracing::Dispatch> = LazyLock::new(|| tracing::Dispatch::new(ToGst));

/// Runs `f` with `tracing` events going to GStreamer's debug log, unless the
/// process has its own global subscriber.
pub(super) fn routed<R>(f: impl FnOnce() -> R) -> R {
    if tracing::dispatcher::has_been_set() {
        return f();
    }
    tracing::dispatcher::with_default(&DISPATCH, f)
}

fn gst_level(level: &Level) -> gst::DebugLevel {
    match *level {
        Level::ERROR => gst::DebugLevel::Error,
        Level::WARN => gst::DebugLevel::Warning,
        Level::INFO => gst::DebugLevel::Info,
        Level::DEBUG => gst::DebugLevel::Debug,
        Level::TRACE => gst::DebugLevel::Trace,
    }
}

/// A `tracing` subscriber that writes events to [`ORT_CAT`] (no spans).
struct ToGst;

/// An event's message and fields as one line.
#[derive(Default)]
struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl Subscriber for ToGst {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.is_event() && ORT_CAT.threshold() >= gst_level(metadata.level())
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut line = Line::default();
        event.record(&mut line);
        let m = event.metadata();
        let text = format!("{}: {}", m.target(), line.0);
        match *m.level() {
            Level::ERROR => gst::error!(ORT_CAT, "{text}"),
            Level::WARN => gst::warning!(ORT_CAT, "{text}"),
            Level::INFO => gst::info!(ORT_CAT, "{text}"),
            Level::DEBUG => gst::debug!(ORT_CAT, "{text}"),
            Level::TRACE => gst::trace!(ORT_CAT, "{text}"),
        }
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn events_reach_the_onnxruntime_category() {
        gst::init().unwrap();
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = seen.clone();
        let _log = gst::log::add_log_function(move |cat, level, _, _, _, _, msg| {
            if cat.name() == "onnxruntime" && level == gst::DebugLevel::Warning {
                sink.lock()
                    .unwrap()
                    .push(msg.get().map(|m| m.to_string()).unwrap_or_default());
            }
        });
        ORT_CAT.set_threshold(gst::DebugLevel::Warning);
        routed(|| {
            tracing::warn!(target: "onnxruntime", category = "session", "removing an unused initializer");
            tracing::debug!(target: "onnxruntime", "below the threshold");
        });
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(
            seen[0].contains("removing an unused initializer"),
            "{seen:?}"
        );
        assert!(seen[0].contains("category=session"), "{seen:?}");
    }
}
