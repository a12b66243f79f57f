//! Several tasks on one image run the vision encoder once: the engine keeps the
//! last image's features, keyed by the image's content, and gives the same
//! answers as runs that encode the image afresh.

use gstflorence::engine::image_io::{self, ImageLimits};
use gstflorence::engine::pipeline::Request;
use gstflorence::engine::preprocess::RgbImage;
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
    // Another image is encoded; so is the first again afterwards (only the last is kept).
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
    assert!(!out.timings.vision_cached);
}
