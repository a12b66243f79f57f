//! GStreamer's own debug log (enabled with `GST_DEBUG`) as `tracing` events
//! (target `gstreamer`), so it comes out through the daemon's logger, as JSON
//! lines in JSON mode, instead of GStreamer's coloured text in the middle of them.
//!
//! `GST_DEBUG` still chooses what GStreamer logs; `logging::init` lets every
//! GStreamer event through the tracing filter when it is set.

/// Replaces GStreamer's default log function (which writes to stderr) with one
/// that emits `tracing` events. Call before `gst::init`, so the messages of
/// initialisation (plugin loading) take the same way.
pub fn route_to_tracing() {
    gst::log::remove_default_log_function();
    gst::log::add_log_function(|category, level, file, function, line, object, message| {
        let Some(text) = message.get() else {
            return;
        };
        let category = category.name();
        let file = file.as_str();
        let function = function.as_str();
        let object = object.map(ToString::to_string);
        macro_rules! emit {
            ($level:ident) => {
                tracing::$level!(
                    target: "gstreamer",
                    category,
                    file,
                    line,
                    function,
                    object = object.as_deref(),
                    "{}",
                    text.as_str()
                )
            };
        }
        match level {
            gst::DebugLevel::Error => emit!(error),
            gst::DebugLevel::Warning | gst::DebugLevel::Fixme => emit!(warn),
            gst::DebugLevel::Info => emit!(info),
            gst::DebugLevel::Debug => emit!(debug),
            _ => emit!(trace),
        }
    });
}
