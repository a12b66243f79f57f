//! Florence-2 vision-language inference for GStreamer.
//!
//! The [`engine`] module runs Florence-2 on ONNX Runtime and has no GStreamer
//! types in its API; the plugin registers the `florencecaption` element and
//! `florenceoverlay`, which draws its results ([`draw`]);
//! [`protocol`] names the fields of the requests and results it exchanges
//! with applications (florenced among them); [`analytics`] reaches
//! GStreamer's analytics relation meta at run time (1.24 and newer).

pub mod analytics;
pub mod draw;
pub mod engine;
pub mod florencecaption;
pub mod florenceoverlay;
pub mod protocol;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    florencecaption::register(plugin)?;
    florenceoverlay::register(plugin)
}

gst::plugin_define!(
    florence,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    // Cargo.toml's "MIT OR Apache-2.0" lets a user take the code under MIT;
    // GStreamer accepts only its own license names and calls MIT "MIT/X11"
    // (it has none for Apache-2.0 or a dual license).
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
