//! Requests decoding together through the batchable decoder
//! (`decoder_model_batched.onnx`): mixed tasks, images, prompt lengths, greedy
//! and beam search, joining at different steps (so one run holds rows at
//! different positions); every request's ids are the ones it gets alone and
//! the ones transformers gives (tests/fixtures/references.json).

use std::sync::Arc;

use gstflorence::engine::backend::{Backend, Job};
use gstflorence::engine::image_io::{self, ImageLimits};
use gstflorence::engine::onnx::OnnxBackend;
use gstflorence::engine::shared_vision::SharedVision;
use gstflorence::engine::task::{Task, TaskInput};
use gstflorence::engine::vision_cache::VisionCache;
use gstflorence::engine::{Florence, GenerationOptions, Interrupt, SessionOptions};
use serde_json::Value;

mod common;
use common::{fixtures, tiny_model_dir};

/// One recorded case as a request: prompt ids, decoding parameters, image,
/// and transformers' ids.
struct Case {
    label: String,
    image: gstflorence::engine::preprocess::RgbImage,
    prompt: Vec<u32>,
    params: gstflorence::engine::generate::DecodeParams,
    want: Vec<u32>,
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// Every task once, on different images, greedy and 3 beams alternating.
fn cases(florence: &Florence) -> Vec<Case> {
    let text = std::fs::read_to_string(fixtures().join("references.json")).unwrap();
    let refs: Value = serde_json::from_str(&text).unwrap();
    let all = refs["cases"].as_array().unwrap();
    // 11 is prime to the 16 tasks: every task comes once, the images vary.
    (0..16)
        .map(|i| {
            let case = &all[(i * 11) % all.len()];
            let beams = if i % 2 == 0 { 1 } else { 3 };
            let name = case["image"].as_str().unwrap();
            let image = image_io::read(
                &fixtures().join(format!("images/{name}.png")),
                &ImageLimits::default(),
            )
            .unwrap();
            let task: Task = case["task"].as_str().unwrap().parse().unwrap();
            let region = case.get("region").and_then(|r| {
                let r: Vec<f64> = r.as_array()?.iter().filter_map(Value::as_f64).collect();
                Some([r[0], r[1], r[2], r[3]])
            });
            let input = TaskInput {
                text: if region.is_some() {
                    None
                } else {
                    case["text_input"].as_str().map(str::to_owned)
                },
                region,
            };
            let prompt = florence
                .prompt_ids(task, &input, image.width, image.height)
                .unwrap();
            assert_eq!(prompt, ids(&case["input_ids"]), "{name} {task}");
            let params = florence
                .decode_params(&GenerationOptions {
                    max_new_tokens: Some(case["max_new_tokens"].as_u64().unwrap() as usize),
                    num_beams: Some(beams),
                    ..GenerationOptions::default()
                })
                .unwrap();
            let label = if beams == 1 { "greedy" } else { "beam3" };
            Case {
                label: format!("{name} {task} {label}"),
                want: ids(&case[label]["ids"]),
                image,
                prompt,
                params,
            }
        })
        .collect()
}

#[test]
fn requests_decoded_together_get_the_ids_they_get_alone() {
    let dir = tiny_model_dir();
    let options = SessionOptions {
        intra_threads: 2,
        graph_cache: None,
        ..SessionOptions::default()
    };
    let florence = Florence::load(&dir, options.clone()).unwrap();
    let backend = OnnxBackend::open(florence.files(), &options).unwrap();
    let cases = cases(&florence);
    let vision = VisionCache::new(false);
    let shared = Arc::new(SharedVision::default());
    let interrupt = Interrupt::new();
    fn job<'a>(c: &'a Case, vision: &'a VisionCache, shared: &'a Arc<SharedVision>) -> Job<'a> {
        Job {
            image: &c.image,
            prompt: &c.prompt,
            params: &c.params,
            vision,
            shared_vision: shared,
            decode_slowdown: SessionOptions::default().decode_slowdown,
        }
    }

    let mut failures = Vec::new();
    for c in &cases {
        let alone = backend
            .generate(job(c, &vision, &shared), &interrupt)
            .unwrap()
            .decoded
            .ids;
        if alone != c.want {
            failures.push(format!(
                "{} alone: {alone:?}, transformers {:?}",
                c.label, c.want
            ));
        }
    }

    // One request joins at every step while the earlier ones decode: runs
    // hold rows of different requests at different positions, greedy rows
    // beside beams, and requests leave as they finish.
    let mut batch = backend
        .batch::<usize>()
        .expect("the tiny model has the batchable decoder");
    let mut together: Vec<Option<Vec<u32>>> = vec![None; cases.len()];
    let mut joined = 0;
    let mut widest = 0;
    while joined < cases.len() || !batch.is_empty() {
        if joined < cases.len() {
            batch.join(
                joined,
                backend
                    .admit(&job(&cases[joined], &vision, &shared), &interrupt)
                    .unwrap(),
            );
            joined += 1;
        }
        widest = widest.max(batch.len());
        for left in batch.step() {
            together[left.key] = Some(left.result.unwrap().ids);
        }
    }
    for (c, got) in cases.iter().zip(&together) {
        let got = got.as_ref().expect("every request finishes");
        if *got != c.want {
            failures.push(format!("{} together: {got:?}, alone {:?}", c.label, c.want));
        }
    }
    assert!(widest >= 4, "at most {widest} requests decoded together");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
