//! The ONNX backend's execution-provider option: the CPU by default, another
//! only when the loaded library offers it (the pinned wheel offers the CPU
//! alone), refused with what the library offers.

use gstflorence::engine::image_io::{self, ImageLimits};
use gstflorence::engine::onnx::execution_provider::{ExecutionProvider, available};
use gstflorence::engine::task::Task;
use gstflorence::engine::{Florence, Request, SessionOptions};
use gstflorence::engine::{ModelError, OnnxError};

mod common;

fn options(provider: ExecutionProvider) -> SessionOptions {
    SessionOptions {
        intra_threads: 1,
        graph_cache: None,
        execution_provider: provider,
        ..SessionOptions::default()
    }
}

#[test]
fn names_parse_short_or_as_onnx_runtime_spells_them() {
    let cuda: ExecutionProvider = "cuda".parse().unwrap();
    assert_eq!(cuda.name(), "CUDAExecutionProvider");
    assert_eq!(cuda.to_string(), "cuda");
    assert_eq!(
        "CUDAExecutionProvider".parse::<ExecutionProvider>(),
        Ok(cuda)
    );
    assert!("CPU".parse::<ExecutionProvider>().unwrap().is_cpu());
    assert!(ExecutionProvider::default().is_cpu());
    let e = "gpu".parse::<ExecutionProvider>().unwrap_err().to_string();
    assert!(
        e.contains("\"gpu\"") && e.contains("cuda") && e.contains("cpu"),
        "{e}"
    );
}

#[test]
fn the_cpu_runs_as_the_default_and_a_provider_the_library_lacks_is_named() {
    let dir = common::tiny_model_dir();
    let image = image_io::read(
        &common::fixtures().join("images/scene_640x480.png"),
        &ImageLimits::default(),
    )
    .unwrap();
    let mut req = Request::new(Task::Caption);
    req.options.max_new_tokens = Some(8);
    let default = Florence::load(&dir, options(ExecutionProvider::default())).unwrap();
    let explicit = Florence::load(&dir, options("cpu".parse().unwrap())).unwrap();
    assert_eq!(
        default.run(&image, &req).unwrap().ids,
        explicit.run(&image, &req).unwrap().ids
    );
    // The runtime is loaded now: what does it offer?
    let offered = available().unwrap();
    assert!(
        offered.iter().any(|p| p == "CPUExecutionProvider"),
        "{offered:?}"
    );
    let lacking: ExecutionProvider = ["cuda", "tensorrt", "openvino", "coreml", "qnn"]
        .iter()
        .map(|n| n.parse::<ExecutionProvider>().unwrap())
        .find(|p| !offered.iter().any(|o| o == p.name()))
        .expect("a CPU build lacks at least one of them");
    let e = Florence::load(&dir, options(lacking.clone())).unwrap_err();
    assert!(
        matches!(&e, ModelError::Onnx(OnnxError::ExecutionProviderMissing { available, .. }) if *available == offered),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains(lacking.name()) && text.contains("CPUExecutionProvider"),
        "{text}"
    );
}
