//! An explicit ONNX Runtime library that cannot be used is an error, not a
//! silent fall-back to another library. Its own test binary: the runtime is
//! loaded once per process, and this must run before anything loads it.

use gstflorence::engine::Florence;
use gstflorence::engine::SessionOptions;
use gstflorence::engine::onnx::runtime::RuntimeError;
use gstflorence::engine::{ModelError, OnnxError};

mod common;

#[test]
fn an_explicit_library_that_fails_is_an_error() {
    let open = |lib: Option<&str>| {
        Florence::load(
            &common::tiny_model_dir(),
            SessionOptions {
                intra_threads: 1,
                ort_library: lib.map(Into::into),
                ..SessionOptions::default()
            },
        )
    };
    for lib in ["/nonexistent/libonnxruntime.so", "/etc/passwd", "/etc"] {
        match open(Some(lib)) {
            Err(ModelError::Onnx(OnnxError::Runtime(e @ RuntimeError::Explicit { .. }))) => {
                assert!(e.to_string().contains(lib), "{e}");
            }
            other => panic!("{lib}: {other:?}"),
        }
    }
    // Without the setting, the usual search finds the project's library.
    open(None).unwrap();
}
