//! The element's debug category (`GST_DEBUG=florencecaption:5`).

use std::sync::LazyLock;

pub(super) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "florencecaption",
        gst::DebugColorFlags::empty(),
        Some("Florence-2 captioning"),
    )
});
