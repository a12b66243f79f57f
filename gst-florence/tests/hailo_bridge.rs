//! The engine's Hailo side (run-time loader, bridge FFI, handles, buffer
//! checks, status mapping, reopening, the split's loop) against the bridge
//! stand-in (hailo-standin/), loaded as libhailort and as the bridge for its
//! version: the stand-in runs the exporter's ONNX stand-ins of the
//! HEFs behind the same C ABI as the HailoRT bridge, enforces HailoRT's
//! contract, and answers with the faults a test writes into its faults file.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use gstflorence::engine::EngineError;
use gstflorence::engine::hailo::ffi::RawBuffer;
use gstflorence::engine::hailo::networks::{DECODER_STATES_INPUT, DECODER_WINDOW_INPUT};
use gstflorence::engine::hailo::split::HailoSplit;
use gstflorence::engine::hailo::{
    Bridge, HailoError, HailoNetworks, HailoSettings, Status, StreamInfo, bridge_file_name,
};
use gstflorence::engine::image_io::{self, ImageLimits};
use gstflorence::engine::layout::{DECODER_HEF, ENCODER_HEF};
use gstflorence::engine::preprocess::RgbImage;
use gstflorence::engine::{BackendChoice, BackendKind, LoadOptions, SessionOptions};
use serde_json::Value;

mod common;

const FAULTS_ENV: &str = "FLORENCE_HAILO_STANDIN_FAULTS";

fn faults_file() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("hailo-faults-{}", std::process::id()))
}

/// The stand-in's trace of device calls (one line per open, load and run).
fn trace_file() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("hailo-trace-{}", std::process::id()))
}

/// Network runs the stand-in has done in this process so far.
/// The stand-in's traced calls that start with `call` (e.g. "run ", "open ").
fn traced(call: &str) -> usize {
    std::fs::read_to_string(trace_file())
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(call))
        .count()
}

fn device_runs() -> usize {
    traced("run ")
}

/// Serialises the tests of this binary (they share the stand-in's faults file)
/// and points the stand-in at that file with no faults in it.
fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    static ENV: OnceLock<()> = OnceLock::new();
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    ENV.get_or_init(|| {
        // SAFETY: set once, before any test of this binary loads the stand-in
        // (every test takes this lock first), so nothing reads it concurrently.
        unsafe {
            std::env::set_var(FAULTS_ENV, faults_file());
            std::env::set_var("FLORENCE_HAILO_STANDIN_TRACE", trace_file());
        }
    });
    set_faults("");
    guard
}

/// Rewrites the faults file atomically (the stand-in reads it at every call).
fn set_faults(text: &str) {
    let tmp = faults_file().with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, faults_file()).unwrap();
}

/// The stand-in as libhailort, and a bridge folder with it as the HailoRT 5 bridge.
fn settings() -> HailoSettings {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        common::hailo_standin_bridge_dir("hailo-bridge-test", &[bridge_file_name(5)])
    });
    HailoSettings {
        hailort_library: Some(common::hailo_standin_library()),
        bridge_dir: Some(dir.clone()),
        ..HailoSettings::default()
    }
}

fn bridge() -> std::sync::Arc<Bridge> {
    settings().bridge().unwrap()
}

fn references() -> &'static Value {
    static REFS: OnceLock<Value> = OnceLock::new();
    REFS.get_or_init(|| {
        let text = std::fs::read_to_string(common::fixtures().join("references.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    })
}

fn model_dir() -> PathBuf {
    common::fixtures().join(references()["model_dir"].as_str().unwrap())
}

fn hailo_dir() -> PathBuf {
    model_dir().join("hailo")
}

fn image(name: &str) -> RgbImage {
    image_io::read(
        &common::fixtures().join(format!("images/{name}.png")),
        &ImageLimits::default(),
    )
    .unwrap()
}

/// The first reference image and its recorded Hailo-split tokens.
fn first_case() -> (RgbImage, Vec<u32>) {
    let img = &references()["images"][0];
    (image(img["name"].as_str().unwrap()), ids(img))
}

fn ids(img: &Value) -> Vec<u32> {
    img["hailo_caption_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

fn split() -> HailoSplit<HailoNetworks> {
    HailoSplit::open_hailo(
        &model_dir(),
        &SessionOptions {
            intra_threads: 2,
            ..SessionOptions::default()
        },
        bridge(),
        settings(),
    )
    .unwrap()
}

fn device_error(r: Result<Vec<u32>, EngineError>) -> HailoError {
    match r {
        Err(EngineError::Backend(f)) => f
            .cause::<HailoError>()
            .cloned()
            .unwrap_or_else(|| panic!("expected the bridge's error, got {f:?}")),
        other => panic!("expected a device error, got {other:?}"),
    }
}

#[test]
fn the_split_over_the_bridge_reproduces_the_hailo_split_references() {
    let _g = exclusive();
    let mut split = split();
    assert!(!split.networks_mut().is_open(), "opened before first use");
    let mut checked = 0;
    for img in references()["images"].as_array().unwrap() {
        let name = img["name"].as_str().unwrap();
        assert_eq!(split.caption(&image(name)).unwrap(), ids(img), "{name}");
        checked += 1;
    }
    assert!(checked >= 10);
    assert!(split.networks_mut().is_open());
}

#[test]
fn loaded_hefs_describe_hailort_streams_at_float32() {
    let _g = exclusive();
    let bridge = bridge();
    let source = bridge.source();
    assert_eq!(source.hailort.version.to_string(), "5.2.0");
    assert_eq!(
        source.hailort.path.canonicalize().unwrap(),
        common::hailo_standin_library().canonicalize().unwrap()
    );
    assert!(source.bridge.ends_with("libflorence_hailo_hailort5.so"));
    let device = bridge.open_device("SHARED").unwrap();
    let decoder = device
        .load_model(&hailo_dir().join(DECODER_HEF), 16)
        .unwrap();
    let (n, d, w, v) = (158u32, 128u32, 32u32, 1626u32);
    assert_eq!(
        decoder.inputs(),
        [
            StreamInfo {
                name: DECODER_STATES_INPUT.into(),
                shape: [1, n, d],
                frame_bytes: u64::from(n * d * 4),
            },
            StreamInfo {
                name: DECODER_WINDOW_INPUT.into(),
                shape: [1, w, d],
                frame_bytes: u64::from(w * d * 4),
            },
        ]
    );
    assert_eq!(decoder.outputs().len(), 1);
    assert_eq!(decoder.outputs()[0].frame_bytes, u64::from(w * v * 4));
    let encoder = device
        .load_model(&hailo_dir().join(ENCODER_HEF), 16)
        .unwrap();
    assert_eq!(encoder.inputs().len(), 1);
    assert_eq!(encoder.inputs()[0].frame_bytes, u64::from(n * d * 4));
    // The device outlives its handle while a model uses it.
    drop(device);
    assert_eq!(encoder.outputs()[0].shape, [1, n, d]);
}

#[test]
fn the_bridge_refuses_unknown_streams_and_wrong_frame_sizes() {
    let _g = exclusive();
    let bridge = bridge();
    let device = bridge.open_device("SHARED").unwrap();
    let mut encoder = device
        .load_model(&hailo_dir().join(ENCODER_HEF), 16)
        .unwrap();
    let input = encoder.inputs()[0].clone();
    let output = encoder.outputs()[0].clone();
    let x = vec![0.5f32; input.frame_len()];
    let mut y = vec![0f32; output.frame_len()];
    let timeout = Duration::from_secs(60);
    // An unknown name reaches the bridge, which answers HAILO_NOT_FOUND.
    let e = encoder
        .run(
            "encoder",
            &[("florence2_transformer_encoder/input_layer9", &x)],
            &mut [(&output.name, &mut y)],
            timeout,
        )
        .unwrap_err();
    assert!(
        matches!(e, HailoError::Contract { status, .. } if status == Status::NOT_FOUND),
        "{e}"
    );
    // A wrong length never leaves the engine...
    let e = encoder
        .run(
            "encoder",
            &[(&input.name, &x[1..])],
            &mut [(&output.name, &mut y)],
            timeout,
        )
        .unwrap_err();
    assert!(matches!(e, HailoError::Streams { .. }), "{e}");
    // ...and the bridge itself refuses one with HAILO_INVALID_ARGUMENT, as it
    // refuses an unbound output.
    let api = bridge.api();
    let in_name = CString::new(input.name.clone()).unwrap();
    let out_name = CString::new(output.name.clone()).unwrap();
    let raw_model = raw_model(&encoder);
    let short = [RawBuffer {
        name: in_name.as_ptr(),
        data: x.as_ptr().cast_mut().cast(),
        bytes: input.frame_bytes - 4,
    }];
    let out = [RawBuffer {
        name: out_name.as_ptr(),
        data: y.as_mut_ptr().cast(),
        bytes: output.frame_bytes,
    }];
    // SAFETY: the buffers are valid for the sizes given (short of the frame on purpose).
    let s = unsafe { (api.run)(raw_model, short.as_ptr(), 1, out.as_ptr(), 1, 1000) };
    assert_eq!(Status(s), Status::INVALID_ARGUMENT);
    let full = [RawBuffer {
        name: in_name.as_ptr(),
        data: x.as_ptr().cast_mut().cast(),
        bytes: input.frame_bytes,
    }];
    // SAFETY: as above; no output bound.
    let s = unsafe { (api.run)(raw_model, full.as_ptr(), 1, out.as_ptr(), 0, 1000) };
    assert_eq!(Status(s), Status::INVALID_ARGUMENT);
    // SAFETY: as above, everything bound: the same call succeeds.
    let s = unsafe { (api.run)(raw_model, full.as_ptr(), 1, out.as_ptr(), 1, 1000) };
    assert_eq!(Status(s), Status::SUCCESS);
    assert!(y.iter().any(|v| *v != 0.0));
}

/// The raw handle of a loaded model, for calling the bridge directly.
fn raw_model(
    model: &gstflorence::engine::hailo::Model,
) -> *mut gstflorence::engine::hailo::ffi::RawModel {
    model.raw()
}

#[test]
fn hef_problems_are_start_up_errors_naming_the_file_and_cause() {
    let _g = exclusive();
    let bridge = bridge();
    let device = bridge.open_device("SHARED").unwrap();
    let missing = hailo_dir().join("no_such.hef");
    let e = device.load_model(&missing, 16).err().unwrap();
    assert!(
        matches!(&e, HailoError::HefMissing { status, hef } if *status == Status::OPEN_FILE_FAILURE && *hef == missing),
        "{e}"
    );
    let not_a_hef = hailo_dir().join("hailo_split.json");
    let e = device.load_model(&not_a_hef, 16).err().unwrap();
    assert!(
        matches!(&e, HailoError::HefUnusable { status, .. } if *status == Status::INVALID_HEF),
        "{e}"
    );
    // A Hailo-8 device with HEFs compiled for hailo10h (and the reverse, which
    // is what users of the public Hailo-8 HEFs on a Hailo-10H hit).
    drop(device);
    set_faults("chip=hailo8\n");
    let device = bridge.open_device("SHARED").unwrap();
    let hef = hailo_dir().join(ENCODER_HEF);
    let e = device.load_model(&hef, 16).err().unwrap();
    assert!(
        matches!(&e, HailoError::WrongChip { status, hef: h } if *status == Status::HEF_NOT_COMPATIBLE_WITH_DEVICE && *h == hef),
        "{e}"
    );
    assert!(e.to_string().contains("hailo10h"), "{e}");
    set_faults("open=64\n");
    let e = bridge.open_device("SHARED").err().unwrap();
    assert!(matches!(e, HailoError::NoDriver { .. }), "{e}");
    assert!(e.to_string().contains("/dev/hailo0"), "{e}");
}

#[test]
fn a_busy_device_is_retryable_and_the_next_request_succeeds() {
    let _g = exclusive();
    let (img, want) = first_case();
    let mut split = split();
    set_faults("open=74\n");
    let e = device_error(split.caption(&img));
    assert!(e.is_busy(), "{e}");
    assert_eq!(e.status(), Some(Status::OUT_OF_PHYSICAL_DEVICES));
    assert!(!split.networks_mut().is_open());
    set_faults("");
    assert_eq!(split.caption(&img).unwrap(), want);
}

#[test]
fn a_device_lost_mid_caption_is_reopened_by_the_next_request() {
    let _g = exclusive();
    let (img, want) = first_case();
    let mut split = split();
    assert_eq!(split.caption(&img).unwrap(), want);
    // Gone after the text encoder and two decoder steps.
    set_faults("run=96@3\n");
    let e = device_error(split.caption(&img));
    assert!(e.is_device_lost(), "{e}");
    assert_eq!(e.status(), Some(Status::DEVICE_NOT_CONNECTED));
    assert!(!split.networks_mut().is_open(), "a lost device is let go");
    set_faults("");
    assert_eq!(split.caption(&img).unwrap(), want);
    assert!(split.networks_mut().is_open());
}

#[test]
fn a_run_timeout_is_reported_and_the_device_reopened() {
    let _g = exclusive();
    let (img, want) = first_case();
    let mut split = split();
    set_faults("run=4\n");
    let e = device_error(split.caption(&img));
    assert!(
        matches!(&e, HailoError::Timeout { status, .. } if *status == Status::TIMEOUT),
        "{e}"
    );
    assert!(e.to_string().contains("timeout 1000 ms"), "{e}");
    assert!(!split.networks_mut().is_open());
    set_faults("");
    assert_eq!(split.caption(&img).unwrap(), want);
}

#[test]
fn released_device_is_reopened_on_the_next_caption() {
    let _g = exclusive();
    let (img, want) = first_case();
    let mut split = split();
    split.networks_mut().open().unwrap();
    split.networks_mut().release();
    assert!(!split.networks_mut().is_open());
    assert_eq!(split.caption(&img).unwrap(), want);
}

#[test]
fn hefs_that_do_not_fit_the_model_are_refused_with_what_was_expected() {
    let _g = exclusive();
    // The tiny model's split with the window the HEF does not have.
    let bridge = bridge();
    let shapes = gstflorence::engine::hailo::SplitShapes {
        tokens: 158,
        d_model: 128,
        window: 16,
        vocab: 1626,
    };
    let mut networks = HailoNetworks::new(
        bridge,
        hailo_dir().join(ENCODER_HEF),
        hailo_dir().join(DECODER_HEF),
        shapes,
        settings(),
    );
    let e = networks.open().unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, HailoError::Streams { .. }), "{text}");
    assert!(
        text.contains(DECODER_WINDOW_INPUT) && text.contains("16384 bytes"),
        "{text}"
    );
    assert!(!networks.is_open());
}

/// The reason the loader gives with these faults and this bridge folder.
fn load_error(faults: &str, bridges: &[String]) -> HailoError {
    set_faults(faults);
    let dir = common::hailo_standin_bridge_dir("loader", bridges);
    let e = HailoSettings {
        bridge_dir: Some(dir),
        ..settings()
    }
    .bridge()
    .unwrap_err();
    set_faults("");
    e
}

#[test]
fn the_loader_names_each_way_the_machine_lacks_hailo() {
    let _g = exclusive();
    // No libhailort.
    let e = HailoSettings {
        hailort_library: Some(PathBuf::from("/nonexistent/libhailort.so")),
        ..settings()
    }
    .bridge()
    .unwrap_err();
    assert!(matches!(e, HailoError::NoHailoRt { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("no HailoRT library on this machine"),
        "{e}"
    );
    // HailoRT 4.23.0, only the HailoRT 5 bridge installed.
    let e = load_error("hailort=4.23.0\n", &[bridge_file_name(5)]);
    assert!(
        matches!(&e, HailoError::NoBridge { version, file, .. } if version.major == 4 && *file == bridge_file_name(4)),
        "{e}"
    );
    let text = e.to_string();
    assert!(
        text.starts_with("HailoRT 4.23.0 found")
            && text.contains("no bridge for HailoRT 4 is installed")
            && text.contains("florence-hailo-bridges-loader"),
        "{text}"
    );
    // The 4.x bridge runs with 4.x: the same folder with both bridges loads.
    set_faults("hailort=4.23.0\n");
    let dir = common::hailo_standin_bridge_dir("both", &[bridge_file_name(4), bridge_file_name(5)]);
    let b = HailoSettings {
        bridge_dir: Some(dir),
        ..settings()
    }
    .bridge()
    .unwrap();
    assert!(b.source().bridge.ends_with(bridge_file_name(4)));
    set_faults("");
    // A bridge built for HailoRT 4 under the HailoRT 5 name.
    let e = load_error("bridge_for=4\n", &[bridge_file_name(5)]);
    assert!(
        matches!(&e, HailoError::BridgeForOtherHailoRt { built_for: 4, version, .. } if version.major == 5),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("was built for HailoRT 4, but the HailoRT library is 5.2.0"),
        "{e}"
    );
    // A bridge of another ABI version.
    let e = load_error("abi=1\n", &[bridge_file_name(5)]);
    assert!(
        matches!(
            &e,
            HailoError::BridgeAbi {
                found: 1,
                expected: 2,
                ..
            }
        ),
        "{e}"
    );
}

/// The C++ bridges built by scripts/build-hailo-bridges.sh
/// (`FLORENCE_HAILO_BRIDGES_BUILT` names their folder; scripts/check-hailo-bridge.sh
/// runs this) go through the loader against the stand-in libhailort: the
/// loader picks the bridge of the library's major by name and loads it
/// RTLD_NOW, which refuses it naming a HailoRT symbol the stand-in does not
/// provide (HailoRT's C++ API is not faked: running a bridge needs a Pi).
#[test]
#[ignore = "needs the bridges built by scripts/build-hailo-bridges.sh"]
fn real_bridges_load_through_the_loader_up_to_hailorts_own_symbols() {
    let _g = exclusive();
    let dir = PathBuf::from(
        std::env::var_os("FLORENCE_HAILO_BRIDGES_BUILT").expect("set FLORENCE_HAILO_BRIDGES_BUILT"),
    );
    for (version, major) in [("5.2.0", 5), ("4.23.0", 4)] {
        set_faults(&format!("hailort={version}\n"));
        let e = HailoSettings {
            bridge_dir: Some(dir.clone()),
            ..settings()
        }
        .bridge()
        .unwrap_err();
        set_faults("");
        let HailoError::Library { path, reason } = &e else {
            panic!("HailoRT {version}: expected the bridge to be refused, got {e}");
        };
        assert_eq!(*path, dir.join(bridge_file_name(major)), "{e}");
        assert!(
            reason.contains("undefined symbol") && reason.contains("hailo"),
            "HailoRT {version}: {e}"
        );
    }
}

fn captioner(idle: Option<Duration>) -> gstflorence::engine::hailo::HailoBackend {
    gstflorence::engine::hailo::HailoBackend::open(
        &model_dir(),
        &SessionOptions {
            intra_threads: 2,
            ..SessionOptions::default()
        },
        settings(),
        idle,
    )
    .unwrap()
}

/// Loading options with captions on the stand-in device (never released).
fn on_standin() -> LoadOptions {
    LoadOptions {
        session: SessionOptions {
            intra_threads: 2,
            ..SessionOptions::default()
        },
        backend: BackendChoice::Hailo,
        hailo: settings(),
        idle_release: None,
    }
}

/// The tiny model with captions on the stand-in device.
fn florence_with_standin() -> gstflorence::engine::Florence {
    let florence = gstflorence::engine::Florence::load(&model_dir(), on_standin()).unwrap();
    assert_eq!(florence.caption_backend(), BackendKind::Hailo);
    assert!(
        florence.backend_reason().starts_with("backend=hailo"),
        "{}",
        florence.backend_reason()
    );
    florence
}

#[test]
fn florence_answers_captions_from_the_device_and_other_tasks_from_onnx_runtime() {
    use gstflorence::engine::Request;
    use gstflorence::engine::task::Task;
    let _g = exclusive();
    let (img, want) = first_case();
    let florence = florence_with_standin();
    let out = florence.run(&img, &Request::new(Task::Caption)).unwrap();
    let start = florence.files().model.text_config.decoder_start_token_id;
    assert_eq!(out.ids[0], start);
    assert_eq!(out.ids[1..], want[..]);
    assert_eq!(out.token_count, want.len());
    assert_eq!(out.raw_text, florence.decode_ids(&out.ids).unwrap());
    // The split (384 px, a 32-token window) need not agree with the full model.
    assert!(!out.result.text().is_empty());
    assert_eq!(out.backend, BackendKind::Hailo);
    let od = florence.run(&img, &Request::new(Task::Od)).unwrap();
    assert_eq!(od.task, "<OD>");
    assert_eq!(od.backend, BackendKind::Onnx);
}

/// The tiny model's split in hailo-florence's flat layout (no config files).
fn hailo_florence_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("hailo-florence-{name}"));
    common::model_copies::hailo_florence_layout(&model_dir(), &dir);
    dir
}

#[test]
fn hailo_florences_flat_layout_captions_every_fixture_image_as_recorded() {
    use gstflorence::engine::layout::Layout;
    use gstflorence::engine::task::Task;
    use gstflorence::engine::{Florence, Request};
    let _g = exclusive();
    let dir = hailo_florence_dir("captions");
    assert_eq!(Layout::of(&dir), Layout::HailoFlorence);
    assert_eq!(Layout::of(&model_dir()), Layout::OnnxCommunity);
    let options = SessionOptions {
        intra_threads: 2,
        ..SessionOptions::default()
    };
    // ONNX Runtime alone cannot run it, and the error says why.
    let e = Florence::load(&dir, options).unwrap_err();
    assert!(e.to_string().contains("hailo-florence's layout"), "{e}");
    // backend=auto takes the device: there is nothing else.
    let florence = Florence::load(
        &dir,
        LoadOptions {
            backend: BackendChoice::Auto,
            ..on_standin()
        },
    )
    .unwrap();
    assert!(florence.graph_sources().is_empty(), "no ONNX text graphs");
    assert!(
        florence
            .backend_reason()
            .starts_with("hailo-florence's layout runs on the Hailo device"),
        "{}",
        florence.backend_reason()
    );
    let (img, _) = first_case();
    let refs = references();
    let start = florence.files().model.text_config.decoder_start_token_id;
    for case in refs["images"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let out = florence
            .run(&image(name), &Request::new(Task::Caption))
            .unwrap();
        assert_eq!(out.ids[0], start);
        assert_eq!(out.ids[1..], ids(case)[..], "{name}");
    }
    // Every other task is refused, naming the layout.
    for task in [Task::DetailedCaption, Task::Od, Task::Vqa] {
        let e = florence.run(&img, &Request::new(task)).unwrap_err();
        assert!(
            matches!(e, EngineError::TaskUnavailable { .. })
                && e.to_string().contains("hailo-florence"),
            "{task:?}: {e}"
        );
    }
}

#[test]
fn hailo_florences_layout_refuses_other_image_sizes_and_bad_tables() {
    use gstflorence::engine::Florence;
    let dir = hailo_florence_dir("sizes");
    let e = Florence::load(
        &dir,
        SessionOptions {
            image_size: Some(768),
            ..SessionOptions::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("768"), "{e}");
    // A word table that is not [vocab, d_model] is named.
    std::fs::remove_file(dir.join("word_embedding.npy")).unwrap();
    std::fs::copy(
        hailo_dir().join("caption_embedding.npy"),
        dir.join("word_embedding.npy"),
    )
    .unwrap();
    let e = Florence::load(&dir, SessionOptions::default()).unwrap_err();
    assert!(e.to_string().contains("word_embedding.npy"), "{e}");
}

#[test]
fn a_passed_deadline_or_a_cancel_stops_the_caption_before_the_device_runs() {
    use gstflorence::engine::task::Task;
    use gstflorence::engine::{Interrupt, Interruption, Request};
    let _g = exclusive();
    let (img, _) = first_case();
    let florence = florence_with_standin();
    // Loading opened the device; from now on any run on it would lose it.
    set_faults("run=96\n");
    let req = Request::new(Task::Caption);
    let late = Interrupt::with_deadline(std::time::Instant::now());
    common::assert_interrupted(
        &florence.run_with(&img, &req, &late),
        Interruption::DeadlineExceeded,
    );
    let cancelled = Interrupt::new();
    cancelled.cancel();
    common::assert_interrupted(
        &florence.run_with(&img, &req, &cancelled),
        Interruption::Cancelled,
    );
    use gstflorence::engine::DeviceState;
    assert_eq!(
        florence.device_state(),
        Some(DeviceState::Connected),
        "nothing ran on the device"
    );
}

#[test]
fn a_deadline_passing_during_a_device_run_is_the_requests_not_the_devices() {
    use gstflorence::engine::task::Task;
    use gstflorence::engine::{DeviceState, Interrupt, Interruption, Request};
    use std::time::Instant;
    let _g = exclusive();
    let (img, want) = first_case();
    let florence = florence_with_standin();
    let opens = || traced("open ");
    let opened = opens();
    // The first device run (600 ms) outlasts the request's 300 ms: the run
    // finishes (HailoRT would not let go of it sooner), then the deadline
    // ends the caption as the request's own (a run cut short by it used to
    // be a device timeout: device-error, the device closed and reopened).
    set_faults("run_ms=600\n");
    let late = Interrupt::with_deadline(Instant::now() + Duration::from_millis(300));
    let r = florence.run_with(&img, &Request::new(Task::Caption), &late);
    common::assert_interrupted(&r, Interruption::DeadlineExceeded);
    assert_eq!(florence.device_state(), Some(DeviceState::Connected));
    set_faults("");
    let out = florence.run(&img, &Request::new(Task::Caption)).unwrap();
    assert_eq!(out.ids[1..], want[..]);
    assert_eq!(opens(), opened, "the device was not reopened");
}

#[test]
fn an_idle_device_is_released_and_reopened_by_the_next_caption() {
    use gstflorence::engine::DeviceState;
    let _g = exclusive();
    let c = captioner(Some(Duration::from_millis(200)));
    c.open_device().unwrap();
    // (Its state right now is not asserted: on a loaded machine the idle time
    // may already be over.) Wait for the release itself (the hang guard is generous; no timing is asserted).
    let start = std::time::Instant::now();
    while c.current_state() != DeviceState::Released {
        assert!(start.elapsed() < Duration::from_secs(60), "never released");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Reopened on demand.
    c.open_device().unwrap();
}

/// On a Raspberry Pi with a Hailo device, HailoRT and the bridge for it
/// (installed, or built by this checkout's build.rs or
/// scripts/build-hailo-bridges.sh):
/// `FLORENCE_HAILO_MODEL_DIR=DIR cargo test -p gst-florence --test hailo_bridge -- --ignored real_device`
/// where DIR is a model directory whose `hailo/` holds the exporter's files and
/// HEFs compiled for the device's chip.
#[test]
#[ignore = "needs a Hailo device, HailoRT, its bridge and compiled HEFs"]
fn real_device_runs_the_split() {
    let dir = PathBuf::from(
        std::env::var_os("FLORENCE_HAILO_MODEL_DIR").expect("set FLORENCE_HAILO_MODEL_DIR"),
    );
    let bridge = HailoSettings::default().bridge().unwrap();
    println!("{}", bridge.source());
    let mut split = HailoSplit::open_hailo(
        &dir,
        &SessionOptions::default(),
        bridge,
        HailoSettings::default(),
    )
    .unwrap();
    // Names, shapes and frame sizes checked against the split's expectations.
    split.networks_mut().open().unwrap();
    let (img, _) = first_case();
    let tokens = split.caption(&img).unwrap();
    println!("tokens: {tokens:?}");
    assert!(!tokens.is_empty() && tokens.len() <= 32);
}

#[test]
fn a_caption_queued_for_the_device_leaves_at_its_deadline_not_after_the_one_ahead() {
    use gstflorence::engine::task::Task;
    use gstflorence::engine::{Florence, Interrupt, Interruption, Request};
    use std::time::Instant;
    let _g = exclusive();
    let (img, want) = first_case();
    let (a, _a_key) = Florence::shared(&model_dir(), on_standin()).unwrap();
    let (b, _b_key) = Florence::shared(&model_dir(), on_standin()).unwrap();
    assert_eq!(a.model_id(), b.model_id(), "one model, one device");
    // Every network run takes 150 ms: a caption holds the device for seconds.
    set_faults("run_ms=150\n");
    let runs_before = device_runs();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let (first, a, img) = (done.clone(), &a, &img);
        s.spawn(move || {
            let r = a.run(img, &Request::new(Task::Caption));
            first.send(("a", r)).unwrap();
        });
        // The first holds the device once its first network run starts (the
        // stand-in traces it); before that the second could queue first.
        let guard = Instant::now() + Duration::from_secs(60);
        while device_runs() == runs_before {
            assert!(
                Instant::now() < guard,
                "the first caption never reached the device"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let b = &b;
        s.spawn(move || {
            let deadline = Interrupt::with_deadline(Instant::now() + Duration::from_millis(300));
            let r = b.run_with(img, &Request::new(Task::Caption), &deadline);
            done.send(("b", r)).unwrap();
        });
        // The second leaves at its deadline, while the first still captions
        // (with a plain lock it waited for the whole first caption, so the
        // device ran nothing after it left).
        let (who, r) = finished.recv().unwrap();
        let runs_when_b_left = device_runs();
        assert_eq!(who, "b");
        common::assert_interrupted(&r, Interruption::DeadlineExceeded);
        let (who, r) = finished.recv().unwrap();
        assert_eq!(who, "a");
        let out = r.unwrap();
        assert_eq!(out.ids[1..], want[..], "the first caption is untouched");
        assert!(
            device_runs() > runs_when_b_left,
            "the first caption ran on the device after the second left"
        );
    });
}
