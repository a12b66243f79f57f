//! florencecaption with the Hailo backend over the bridge stand-in
//! (hailo-standin/, the HailoRT library and the bridge named by
//! FLORENCE_HAILORT_LIBRARY and FLORENCE_HAILO_BRIDGE_DIR for this whole test
//! process): the `hailo-*` properties reach the device, and `backend-reason`
//! says where captions run and why.

mod common;

use std::path::PathBuf;

use common::{hailo_standin_bridge_dir, hailo_standin_library, init_element, tiny_model_arg};
use gst::prelude::*;
use gstflorence::engine::hailo::{BRIDGE_DIR_ENV, HAILORT_LIBRARY_ENV, bridge_file_name};

/// Set in the child process of [`without_hailort_backend_reason_names_the_machine`]:
/// that process has no HailoRT library.
const NO_HAILORT_CHILD: &str = "FLORENCE_TEST_ELEMENT_WITHOUT_HAILORT";

/// The bridge and the stand-in's trace, set once for the process (the
/// element reads the bridge from the environment).
fn setup() -> PathBuf {
    static TRACE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    TRACE
        .get_or_init(|| {
            let trace = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("element-hailo-trace-{}", std::process::id()));
            // SAFETY: set once, before any element of this process loads a model.
            let bridges = hailo_standin_bridge_dir("element", &[bridge_file_name(5)]);
            let hailort = match std::env::var_os(NO_HAILORT_CHILD) {
                Some(_) => PathBuf::from("/nonexistent/libhailort.so"),
                None => hailo_standin_library(),
            };
            unsafe {
                std::env::set_var(HAILORT_LIBRARY_ENV, hailort);
                std::env::set_var(BRIDGE_DIR_ENV, bridges);
                std::env::set_var("FLORENCE_HAILO_STANDIN_TRACE", &trace);
            }
            init_element();
            trace
        })
        .clone()
}

/// Runs one frame through `florencecaption PROPS` to EOS; returns its
/// `backend-reason` (read before the model is unloaded at NULL).
fn run(props: &str) -> String {
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=1 ! video/x-raw,width=64,height=48 ! \
         florencecaption name=f model-dir={} mode=every-frame threads=1 {props} ! fakesink",
        tiny_model_arg()
    ))
    .unwrap();
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(120)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{props}: {} ({:?})", e.error(), e.debug()),
            _ => {}
        }
    }
    let f = common::child::<gst::Element>(&pipeline, "f");
    let reason = f.property::<Option<String>>("backend-reason");
    pipeline.set_state(gst::State::Null).unwrap();
    reason.unwrap_or_default()
}

#[test]
fn hailo_properties_have_hailort_defaults_and_bounds() {
    setup();
    let f = gst::ElementFactory::make("florencecaption")
        .build()
        .unwrap();
    assert_eq!(
        f.property::<Option<String>>("hailo-group-id").as_deref(),
        Some("SHARED")
    );
    assert_eq!(f.property::<u32>("hailo-priority"), 16);
    assert_eq!(f.property::<u32>("hailo-timeout"), 1000);
    assert_eq!(f.property::<u32>("hailo-idle-release"), 300);
    assert_eq!(
        f.property::<Option<String>>("backend-reason").as_deref(),
        Some("")
    );
    let spec = f.find_property("hailo-priority").unwrap();
    let spec = spec.downcast_ref::<glib::ParamSpecUInt>().unwrap();
    assert_eq!(spec.maximum(), 31);
}

#[test]
fn the_hailo_properties_reach_the_device_and_backend_reason_says_why() {
    let trace = setup();
    let reason = run("backend=hailo hailo-group-id=cameras hailo-priority=7 hailo-timeout=3000");
    assert!(reason.starts_with("backend=hailo"), "{reason}");
    let lines = std::fs::read_to_string(&trace).unwrap();
    assert!(lines.lines().any(|l| l == "open group=cameras"), "{lines}");
    assert!(
        lines
            .lines()
            .any(|l| l == "load florence2_transformer_decoder.hef priority=7"),
        "{lines}"
    );
    assert!(lines.lines().any(|l| l == "run timeout_ms=3000"), "{lines}");

    assert_eq!(run("backend=onnx"), "backend=onnx");
    let reason = run("backend=auto");
    assert!(reason.starts_with("backend=auto chose Hailo"), "{reason}");
}

/// Without HailoRT on the machine the element's `backend-reason` names the
/// machine's lack. The library's place is process-wide (the environment),
/// set to the stand-in here, so the element runs in a child process of this
/// test binary that has none.
#[test]
fn without_hailort_backend_reason_names_the_machine() {
    const NAME: &str = "without_hailort_backend_reason_names_the_machine";
    if std::env::var_os(NO_HAILORT_CHILD).is_some() {
        setup();
        let reason = run("backend=auto");
        assert!(
            reason
                .starts_with("backend=auto chose ONNX Runtime: no HailoRT library on this machine"),
            "{reason}"
        );
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--nocapture", "--test-threads", "1"])
        .env(NO_HAILORT_CHILD, "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
