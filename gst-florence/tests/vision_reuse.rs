//! Several tasks on one image run the vision encoder once: the engine keeps the
//! last image's features, keyed by the image's content, and gives the same
//! answers as runs that encode the image afresh.

use gstflorence::engine::Request;
use gstflorence::engine::image_io::{self, ImageLimits};
use gstflorence::engine::preprocess::RgbImage;
use gstflorence::engine::shared_vision::RECENT_IMAGES;
use gstflorence::engine::task::Task;

mod common;

fn image(name: &str) -> RgbImage {
    image_io::read(
        &common::fixtures().join(format!("images/{name}.png")),
        &ImageLimits::default(),
    )
    .unwrap()
}

#[test]
fn tasks_on_the_same_image_reuse_its_vision_features() {
    let shared = common::tiny_engine();
    let scene = image("scene_640x480");
    let other = image("scene_768x768");
    let tasks = [Task::Caption, Task::Od, Task::DenseRegionCaption, Task::Ocr];
    for (i, task) in tasks.into_iter().enumerate() {
        let out = shared.run(&scene, &Request::new(task)).unwrap();
        assert_eq!(out.timings.vision_cached, i > 0, "{task}");
        // A fresh engine encodes the image itself: same answer.
        let fresh = common::tiny_engine()
            .run(&scene, &Request::new(task))
            .unwrap();
        assert!(!fresh.timings.vision_cached);
        assert_eq!(out.ids, fresh.ids, "{task}");
    }
    // Another image is encoded; the first stays among the model's recent ones.
    let out = shared.run(&other, &Request::new(Task::Caption)).unwrap();
    assert!(!out.timings.vision_cached);
    let mut changed = scene.clone();
    changed.data[7] ^= 1;
    let out = shared.run(&changed, &Request::new(Task::Caption)).unwrap();
    assert!(
        !out.timings.vision_cached,
        "one changed byte is another image"
    );
    let out = shared.run(&scene, &Request::new(Task::Caption)).unwrap();
    assert!(out.timings.vision_cached, "among the recent images");
    // After RECENT_IMAGES other images it is encoded again.
    for i in 0..RECENT_IMAGES {
        let mut another = other.clone();
        another.data[i] ^= 1;
        let out = shared.run(&another, &Request::new(Task::Caption)).unwrap();
        assert!(!out.timings.vision_cached);
    }
    let out = shared.run(&scene, &Request::new(Task::Caption)).unwrap();
    assert!(!out.timings.vision_cached, "no longer kept");
}

#[test]
fn users_of_one_model_share_an_image_encoded_by_another_user() {
    use gstflorence::engine::{Florence, SessionOptions};
    let options = SessionOptions {
        intra_threads: 1,
        ..SessionOptions::default()
    };
    let dir = common::tiny_model_dir();
    let (first, _first_key) = Florence::shared(&dir, options.clone()).unwrap();
    let (second, _second_key) = Florence::shared(&dir, options.clone()).unwrap();
    assert_eq!(first.model_id(), second.model_id());
    let scene = image("scene_640x480");
    let caption = first.run(&scene, &Request::new(Task::Caption)).unwrap();
    assert!(!caption.timings.vision_cached);
    // The second user's first request on that image encodes nothing.
    let od = second.run(&scene, &Request::new(Task::Od)).unwrap();
    assert!(od.timings.vision_cached);
    let fresh = common::tiny_engine()
        .run(&scene, &Request::new(Task::Od))
        .unwrap();
    assert_eq!(od.ids, fresh.ids);
    // Users that ask at the same time: one encodes, the other waits for it.
    let gray = image("gray_320x240");
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| first.run(&gray, &Request::new(Task::Caption)).unwrap());
        let b = s.spawn(|| second.run(&gray, &Request::new(Task::Ocr)).unwrap());
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(
        a.timings.vision_cached != b.timings.vision_cached,
        "exactly one encoded the image: {} {}",
        a.timings.vision_cached,
        b.timings.vision_cached
    );
    let solo = common::tiny_engine();
    assert_eq!(
        a.ids,
        solo.run(&gray, &Request::new(Task::Caption)).unwrap().ids
    );
    assert_eq!(
        b.ids,
        solo.run(&gray, &Request::new(Task::Ocr)).unwrap().ids
    );
    // A model loaded by another user alone shares nothing with them.
    let own = Florence::load(&dir, options).unwrap();
    assert!(
        !own.run(&gray, &Request::new(Task::Caption))
            .unwrap()
            .timings
            .vision_cached
    );
}

#[test]
fn image_size_option_changes_the_resolution_and_the_prompt_limit() {
    use gstflorence::engine::Florence;
    use gstflorence::engine::ModelError;
    use gstflorence::engine::SessionOptions;
    let open = |size| {
        Florence::load(
            &common::tiny_model_dir(),
            SessionOptions {
                intra_threads: 1,
                image_size: size,
                ..SessionOptions::default()
            },
        )
    };
    let native = open(None).unwrap();
    assert_eq!(native.files().preprocessor.num_image_tokens(), 145);
    let big = open(Some(768)).unwrap();
    assert_eq!(big.files().preprocessor.num_image_tokens(), 577);
    let scene = image("scene_640x480");
    let out = big.run(&scene, &Request::new(Task::Caption)).unwrap();
    assert!(out.token_count > 0);
    // The prompt limit follows the image tokens: 1024 - 577 at 768.
    let long = gstflorence::engine::task::TaskInput {
        text: Some("猫".repeat(200)),
        region: None,
    };
    assert!(native.prompt_ids(Task::Vqa, &long, 640, 480).is_ok());
    let err = big.prompt_ids(Task::Vqa, &long, 640, 480).unwrap_err();
    assert!(
        err.to_string().contains("limit of 447 prompt tokens"),
        "{err}"
    );
    for bad in [0, 383, 512, 1536] {
        assert!(
            matches!(open(Some(bad)), Err(ModelError::ImageSize { .. })),
            "{bad}"
        );
    }
}

#[test]
fn the_cache_can_be_turned_off() {
    use gstflorence::engine::Florence;
    use gstflorence::engine::SessionOptions;
    let engine = Florence::load(
        &common::tiny_model_dir(),
        SessionOptions {
            intra_threads: 1,
            vision_cache: false,
            ..SessionOptions::default()
        },
    )
    .unwrap();
    let scene = image("scene_640x480");
    for _ in 0..2 {
        let out = engine.run(&scene, &Request::new(Task::Caption)).unwrap();
        assert!(!out.timings.vision_cached);
    }
}
