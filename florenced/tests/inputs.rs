//! florenced on inputs that used to reach the model in a shape it cannot run
//! or were misread: sampling with beams, text too long for the encoder,
//! Florence-2's `<loc_>` regions, JPEGs with bytes after their end.

mod common;

use common::*;
use gstflorence::engine::SessionOptions;
use gstflorence::engine::image_io::{self, ImageLimits};
use gstflorence::engine::task::{Task, TaskInput};
use gstflorence::engine::{Florence, GenerationOptions, Request};
use serde_json::json;

#[test]
fn every_decoding_combination_is_served() {
    let d = Spawn::new().ready();
    let png = fixture_png("scene_640x480");
    for beams in [None, Some(1u64), Some(3)] {
        for temperature in [None, Some(0.0), Some(0.5)] {
            for (min, max) in [
                (None, None),
                (Some(0u64), Some(1u64)),
                (Some(3), Some(3)),
                (Some(2), Some(10)),
            ] {
                let mut body = json!({"image": b64(&png), "seed": 5});
                let fields = [
                    ("num_beams", beams.map(|v| json!(v))),
                    ("temperature", temperature.map(|v| json!(v))),
                    ("min_length", min.map(|v| json!(v))),
                    ("max_length", max.map(|v| json!(v))),
                ];
                for (k, v) in fields {
                    if let Some(v) = v {
                        body[k] = v;
                    }
                }
                let r = d.post_json("/v1/caption", &body);
                assert_eq!(r.status, 200, "{body:?}: {}", r.text());
                let n = r.json()["token_count"].as_u64().unwrap();
                assert!(
                    n >= min.unwrap_or(0) && n <= max.unwrap_or(100),
                    "{body:?}: {n}"
                );
            }
        }
    }
}

#[test]
fn a_question_too_long_for_the_model_is_422_naming_the_limit() {
    let d = Spawn::new().ready();
    let png = fixture_png("scene_640x480");
    let long = "猫".repeat(1000);
    for (path, body) in [
        ("/v1/vqa", json!({"image": b64(&png), "question": long})),
        (
            "/v1/tasks/caption_to_phrase_grounding",
            json!({"image": b64(&png), "text": long}),
        ),
        (
            "/v1/tasks/open_vocabulary_detection",
            json!({"image": b64(&png), "text": long}),
        ),
    ] {
        let r = d.post_json(path, &body);
        assert_eq!(r.error_code(422), "invalid_parameters", "{path}");
        assert!(
            r.json()["message"]
                .as_str()
                .unwrap()
                .contains("prompt tokens"),
            "{}",
            r.text()
        );
    }
    // The service goes on.
    let r = d.post_json(
        "/v1/vqa",
        &json!({"image": b64(&png), "question": "what color?"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn region_tasks_take_loc_notation_as_text() {
    let d = Spawn::new().ready();
    let png = fixture_png("scene_640x480");
    let engine = tiny_engine();
    let image = image_io::decode(&png, &ImageLimits::default(), true).unwrap();
    let loc = "<loc_343><loc_652><loc_504><loc_806>";
    for task in [
        Task::RegionToCategory,
        Task::RegionToDescription,
        Task::RegionToSegmentation,
        Task::RegionToOcr,
    ] {
        let want = engine
            .run(
                &image,
                &Request {
                    task,
                    input: TaskInput {
                        text: Some(loc.into()),
                        region: None,
                    },
                    options: GenerationOptions {
                        max_new_tokens: Some(100),
                        min_new_tokens: Some(0),
                        ..GenerationOptions::default()
                    },
                },
            )
            .unwrap();
        let r = d.post_json(
            &format!("/v1/tasks/{}", task.name()),
            &json!({"image": b64(&png), "text": loc}),
        );
        assert_eq!(r.status, 200, "{task}: {}", r.text());
        assert_eq!(
            r.json()["result"][task.token()],
            serde_json::to_value(&want.result).unwrap(),
            "{task}"
        );
    }
    let r = d.post_json(
        "/v1/tasks/region_to_category",
        &json!({"image": b64(&png), "text": "<loc_1><loc_2>"}),
    );
    assert_eq!(r.error_code(422), "invalid_parameters");
    assert!(
        r.json()["message"].as_str().unwrap().contains("<loc_x1>"),
        "{}",
        r.text()
    );
}

#[test]
fn a_jpeg_with_bytes_after_its_end_is_decoded() {
    let d = Spawn::new().ready();
    let mut jpeg = encode(320, 240, scene(320, 240, 3), image::ImageFormat::Jpeg);
    let plain = d
        .post_json("/v1/caption", &json!({"image": b64(&jpeg)}))
        .json();
    // A trailer holding SOS and SOI markers, as some cameras and editors append.
    jpeg.extend_from_slice(&[
        0xFF, 0xDA, 0x00, 0x0C, 1, 2, 3, 4, 0xFF, 0xD8, 0xFF, 0xE1, 0, 4,
    ]);
    let r = d.post_json("/v1/caption", &json!({"image": b64(&jpeg)}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["caption"], plain["caption"]);
    // Cut before its end, it is refused as truncated.
    let cut = &jpeg[..jpeg.len() / 2];
    let r = d.post_json("/v1/caption", &json!({"image": b64(cut)}));
    assert_eq!(r.error_code(400), "invalid_image_format");
}

#[test]
fn image_size_is_configurable() {
    let failure = Spawn::new().set("image_size=500").failure();
    assert!(
        failure.contains("image_size") && failure.contains("384 or 768"),
        "{failure}"
    );
    let d = Spawn::new().set("image_size=768").ready();
    let png = fixture_png("scene_640x480");
    let engine = Florence::load(
        &model_dir(),
        SessionOptions {
            intra_threads: 1,
            image_size: Some(768),
            ..SessionOptions::default()
        },
    )
    .unwrap();
    let image = image_io::decode(&png, &ImageLimits::default(), true).unwrap();
    let mut req = Request::new(Task::Od);
    req.options.max_new_tokens = Some(100);
    req.options.min_new_tokens = Some(0);
    let want = engine.run(&image, &req).unwrap();
    let r = d.post_json("/v1/tasks/od", &json!({"image": b64(&png)}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["result"]["<OD>"],
        serde_json::to_value(&want.result).unwrap()
    );
}

#[test]
fn analyze_runs_several_tasks_on_one_vision_pass() {
    let d = Spawn::new().ready();
    let png = fixture_png("scene_640x480");
    let tasks = json!([
        {"task": "caption"},
        {"task": "od"},
        {"task": "caption_to_phrase_grounding", "text": "a purple bar"},
        {"task": "<REGION_TO_CATEGORY>", "region": [220, 313, 323, 387]},
        {"task": "region_to_ocr", "text": "<loc_343><loc_652><loc_504><loc_806>"},
        {"task": "od"}
    ]);
    let r = d.post_json(
        "/v1/analyze",
        &json!({"image": b64(&png), "tasks": tasks, "num_beams": 2, "max_length": 30}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 6);
    assert_eq!(body["model"], "florence-2");
    assert_eq!(body["image_size"], json!([640, 480]));
    for (i, (result, task)) in results.iter().zip(tasks.as_array().unwrap()).enumerate() {
        // One vision pass: every task after the first reuses the features.
        assert_eq!(result["vision_cached"], i > 0, "{i}: {result}");
        // The same answer as the task alone.
        let mut single = task.clone();
        single["image"] = b64(&png).into();
        single["num_beams"] = 2.into();
        single["max_length"] = 30.into();
        let name = task["task"]
            .as_str()
            .unwrap()
            .parse::<Task>()
            .unwrap()
            .name();
        let alone = d.post_json(&format!("/v1/tasks/{name}"), &single).json();
        assert_eq!(result["result"], alone["result"], "{i}: {task}");
        assert_eq!(result["task"], alone["task"]);
        assert_eq!(result["token_count"], alone["token_count"]);
    }
    // Refusals name the task at fault.
    for (tasks, needle) in [
        (json!([]), "1 to 16"),
        (json!("od"), "array"),
        (json!([{"task": "od"}, {"task": "nope"}]), "tasks[1]"),
        (json!([{"task": "od", "text": 3}]), "tasks[0]: text"),
        (
            json!([{"task": "region_to_ocr", "region": [1, 2, 3]}]),
            "tasks[0]: region",
        ),
        (json!([{"task": "od", "text": "x"}]), "takes no input"),
    ] {
        let r = d.post_json("/v1/analyze", &json!({"image": b64(&png), "tasks": tasks}));
        assert_eq!(r.error_code(422), "invalid_parameters", "{tasks}");
        assert!(
            r.json()["message"].as_str().unwrap().contains(needle),
            "{tasks}: {}",
            r.text()
        );
    }
    let r = request(
        d.addr,
        "POST",
        "/v1/analyze",
        &[("content-type", "image/png")],
        &png,
    );
    assert_eq!(r.error_code(415), "unsupported_media_type");
}
