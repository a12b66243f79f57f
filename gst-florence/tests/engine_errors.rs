//! Bad requests and broken model directories give typed errors, never a panic.

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use gstflorence::engine::ModelError;
use gstflorence::engine::SessionOptions;
use gstflorence::engine::image_io::{self, DecodeError, ImageLimits};
use gstflorence::engine::preprocess::RgbImage;
use gstflorence::engine::task::{PromptError, Task, TaskInput};
use gstflorence::engine::{EngineError, Florence, GenerationOptions, Request};

fn tiny() -> PathBuf {
    common::tiny_model_dir()
}

fn options() -> SessionOptions {
    SessionOptions {
        intra_threads: 1,
        ..SessionOptions::default()
    }
}

fn model() -> &'static Florence {
    static M: OnceLock<Florence> = OnceLock::new();
    M.get_or_init(|| Florence::load(&tiny(), options()).unwrap())
}

fn gray(w: u32, h: u32) -> RgbImage {
    RgbImage::from_rgb(w, h, vec![128; (w * h * 3) as usize]).unwrap()
}

fn run(task: Task, input: TaskInput, options: GenerationOptions) -> Result<String, EngineError> {
    model()
        .run(
            &gray(64, 48),
            &Request {
                task,
                input,
                options,
            },
        )
        .map(|o| o.raw_text)
}

#[test]
fn bad_parameters_are_refused() {
    let opts = |f: fn(&mut GenerationOptions)| {
        let mut o = GenerationOptions::default();
        f(&mut o);
        o
    };
    let cases = [
        opts(|o| o.max_new_tokens = Some(0)),
        opts(|o| o.max_new_tokens = Some(1_000_000)),
        opts(|o| {
            o.max_new_tokens = Some(5);
            o.min_new_tokens = Some(6)
        }),
        opts(|o| o.num_beams = Some(17)),
        opts(|o| o.temperature = Some(-1.0)),
        opts(|o| o.temperature = Some(f32::NAN)),
        opts(|o| {
            o.temperature = Some(1.0);
            o.top_p = Some(0.0)
        }),
    ];
    for o in cases {
        let err = run(Task::Caption, TaskInput::default(), o.clone()).unwrap_err();
        assert!(matches!(err, EngineError::Parameter(_)), "{o:?}: {err}");
    }
}

#[test]
fn bad_task_inputs_are_refused() {
    let region = |r: [f64; 4]| TaskInput {
        text: None,
        region: Some(r),
    };
    let text = |t: &str| TaskInput {
        text: Some(t.into()),
        region: None,
    };
    let g = GenerationOptions::default;
    assert!(matches!(
        run(Task::Od, text("car"), g()),
        Err(EngineError::Prompt(PromptError::UnexpectedInput { .. }))
    ));
    assert!(matches!(
        run(Task::Vqa, TaskInput::default(), g()),
        Err(EngineError::Prompt(PromptError::MissingText { .. }))
    ));
    assert!(matches!(
        run(Task::RegionToCategory, region([0.0, 0.0, 65.0, 10.0]), g()),
        Err(EngineError::Prompt(PromptError::BadRegion { .. }))
    ));
    assert!(matches!(
        run(
            Task::RegionToCategory,
            region([5.0, f64::NAN, 6.0, 10.0]),
            g()
        ),
        Err(EngineError::Prompt(PromptError::BadRegion { .. }))
    ));
    assert!("<NOT_A_TASK>".parse::<Task>().is_err());
}

#[test]
fn odd_images_and_sampling_run() {
    // 1x1 and extreme aspect ratios go through; sampling with a seed is reproducible.
    let m = model();
    for (w, h) in [(1, 1), (3000, 2), (2, 3000)] {
        let out = m.run(&gray(w, h), &Request::new(Task::Caption)).unwrap();
        assert!(out.token_count >= 1);
        assert_eq!(*out.ids.last().unwrap(), 2, "ends with EOS");
    }
    let mut req = Request::new(Task::DetailedCaption);
    req.options.temperature = Some(1.0);
    req.options.seed = Some(7);
    req.options.num_beams = Some(1);
    let a = m.run(&gray(64, 48), &req).unwrap();
    let b = m.run(&gray(64, 48), &req).unwrap();
    assert_eq!(a.ids, b.ids);
}

#[test]
fn corrupt_images_are_decode_errors() {
    let limits = ImageLimits::default();
    let png = common::fixture_png("scene_640x480");
    assert!(image_io::decode(&png, &limits, true).is_ok());
    assert!(matches!(
        image_io::decode(&png[..png.len() / 2], &limits, true),
        Err(DecodeError::Corrupt { .. })
    ));
    assert!(matches!(
        image_io::decode(b"GIF89a....", &limits, true),
        Err(DecodeError::UnknownFormat)
    ));
    let small = ImageLimits {
        max_width: 100,
        max_height: 100,
        max_pixels: 10_000,
    };
    assert!(matches!(
        image_io::decode(&png, &small, true),
        Err(DecodeError::TooLarge { width: 640, .. })
    ));
}

#[test]
fn missing_or_broken_tokenizer_is_named() {
    let scratch = common::scratch::Scratch::new("tok");
    let dir = scratch.path();
    std::fs::create_dir_all(dir.join("onnx")).unwrap();
    for f in [
        "config.json",
        "generation_config.json",
        "preprocessor_config.json",
    ] {
        std::fs::copy(tiny().join(f), dir.join(f)).unwrap();
    }
    let err = Florence::load(dir, options()).unwrap_err();
    assert!(matches!(err, ModelError::MissingTokenizer { .. }), "{err}");
    std::fs::write(dir.join("tokenizer.json"), "{\"not\": \"a tokenizer\"}").unwrap();
    let err = Florence::load(dir, options()).unwrap_err();
    assert!(matches!(err, ModelError::Tokenizer { .. }), "{err}");
    assert!(err.to_string().contains("tokenizer.json"));
}

#[test]
fn an_interrupt_stops_a_run() {
    use gstflorence::engine::{Interrupt, Interruption};
    use std::time::{Duration, Instant};
    let image = gray(64, 48);
    let mut req = Request::new(Task::Caption);
    req.options.max_new_tokens = Some(1000);
    req.options.min_new_tokens = Some(1000);
    req.options.num_beams = Some(4);
    let past = Interrupt::with_deadline(Instant::now());
    common::assert_interrupted(
        &model().run_with(&image, &req, &past),
        Interruption::DeadlineExceeded,
    );
    // Cancelled from another thread mid-run; every clone of the handle sees it.
    let interrupt = Interrupt::new();
    let handle = interrupt.clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        handle.cancel();
    });
    let err = model().run_with(&image, &req, &interrupt).unwrap_err();
    canceller.join().unwrap();
    assert!(matches!(
        err,
        EngineError::Interrupted(Interruption::Cancelled)
    ));
    assert_eq!(err.to_string(), "the request was cancelled");
    // The model is fine afterwards.
    assert!(model().run(&image, &Request::new(Task::Caption)).is_ok());
}
