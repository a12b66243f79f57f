//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use gstflorence::engine::Florence;
use gstflorence::engine::SessionOptions;
use serde_json::Value;

pub mod model_copies;
pub mod process;

/// GStreamer initialised and the plugin registered, once per test process.
pub fn init_element() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstflorence::plugin_register_static().unwrap();
    });
}

/// The tiny model's directory as the element's `model-dir` takes it.
pub fn tiny_model_arg() -> String {
    tiny_model_dir().display().to_string()
}

/// The element named `name` in a parsed pipeline, as `T` (AppSrc, AppSink, Element).
pub fn child<T: gst::prelude::IsA<gst::Element>>(pipeline: &gst::Element, name: &str) -> T {
    use gst::prelude::*;
    pipeline
        .downcast_ref::<gst::Bin>()
        .unwrap()
        .by_name(name)
        .unwrap_or_else(|| panic!("no element {name}"))
        .downcast::<T>()
        .unwrap()
}

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn fixtures() -> PathBuf {
    root().join("tests/fixtures")
}

pub fn tiny_model_dir() -> PathBuf {
    fixtures().join("tiny-florence2")
}

/// The tiny model on one ONNX Runtime thread (the reference for the element's output).
pub fn tiny_engine() -> Florence {
    Florence::load(
        &tiny_model_dir(),
        SessionOptions {
            intra_threads: 1,
            ..SessionOptions::default()
        },
    )
    .unwrap()
}

/// target/<profile>, where cargo puts libgstflorence.so for gst-launch and Python.
pub fn plugin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    assert!(
        dir.join("libgstflorence.so").is_file(),
        "libgstflorence.so not built in {} (run `cargo build` first, as scripts/test.sh does)",
        dir.display()
    );
    dir
}

/// JSON equality with numbers compared as f64 within 1e-3 (the reference
/// stores ints where the engine has f64 of integral value).
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            (x.as_f64().unwrap_or(f64::NAN) - y.as_f64().unwrap_or(f64::NAN)).abs() < 1e-3
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// The Hailo bridge stand-in (hailo-standin/, a cdylib that `cargo build`
/// puts beside libgstflorence.so): CI's Hailo device.
pub fn hailo_standin_library() -> PathBuf {
    let path = plugin_dir().join("libflorence_hailo_standin.so");
    assert!(
        path.is_file(),
        "{} not built (run `cargo build --workspace` first, as scripts/test.sh does)",
        path.display()
    );
    path
}
