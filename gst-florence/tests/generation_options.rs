//! Every documented combination of decoding options runs on the real model:
//! greedy and beams, with and without sampling, across min/max lengths; text
//! inputs too long for the encoder's positions are refused before the model
//! runs, with the limit in tokens.

use std::sync::OnceLock;

use gstflorence::engine::task::{PromptError, Task, TaskInput};
use gstflorence::engine::{EngineError, Florence, GenerationOptions, Request};

mod common;

use common::scene;

fn model() -> &'static Florence {
    static M: OnceLock<Florence> = OnceLock::new();
    M.get_or_init(common::tiny_engine)
}

#[test]
fn greedy_beams_and_sampling_at_every_length() {
    let img = scene();
    let eos = model().files().model.text_config.eos_token_id;
    let mut cases = 0;
    for beams in [None, Some(1), Some(2), Some(3), Some(8)] {
        for temperature in [None, Some(0.5), Some(1.3)] {
            for (min, max) in [
                (None, None),
                (Some(0), Some(1)),
                (Some(1), Some(1)),
                (Some(5), Some(5)),
                (Some(3), Some(12)),
                (None, Some(20)),
            ] {
                let options = GenerationOptions {
                    num_beams: beams,
                    temperature,
                    seed: Some(7),
                    min_new_tokens: min,
                    max_new_tokens: max,
                    ..GenerationOptions::default()
                };
                let req = Request {
                    task: Task::Caption,
                    input: TaskInput::default(),
                    options,
                };
                let label =
                    format!("beams {beams:?} temperature {temperature:?} min {min:?} max {max:?}");
                let out = model()
                    .run(&img, &req)
                    .unwrap_or_else(|e| panic!("{label}: {e}"));
                let new = out.ids.len() - 1;
                assert!(new >= min.unwrap_or(0), "{label}: {new} new tokens");
                if let Some(max) = max {
                    assert!(new <= max, "{label}: {new} new tokens");
                    assert!(
                        *out.ids.last().unwrap() == eos || new == max,
                        "{label}: stops at EOS or the limit: {:?}",
                        out.ids
                    );
                }
                if temperature.is_some() {
                    let again = model().run(&img, &req).unwrap();
                    assert_eq!(again.ids, out.ids, "{label}: a seed reproduces the sample");
                }
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 90);
}

#[test]
fn sampling_with_beams_depends_on_the_seed() {
    let img = scene();
    let mut seen = std::collections::HashSet::new();
    for seed in 0..12 {
        let req = Request {
            task: Task::DetailedCaption,
            input: TaskInput::default(),
            options: GenerationOptions {
                num_beams: Some(3),
                temperature: Some(1.5),
                seed: Some(seed),
                ..GenerationOptions::default()
            },
        };
        seen.insert(model().run(&img, &req).unwrap().ids);
    }
    assert!(seen.len() > 1, "12 seeds gave one answer");
}

/// A text input of `n` characters that take several byte-level tokens each, so
/// that 1024 characters (the documented limit) overflow the encoder positions.
fn question(n: usize) -> TaskInput {
    TaskInput {
        text: Some("猫".repeat(n)),
        region: None,
    }
}

#[test]
fn a_prompt_longer_than_the_encoder_positions_is_refused_with_the_limit() {
    let m = model();
    let img = scene();
    let positions = m.files().model.text_config.max_position_embeddings;
    let limit = positions - m.files().preprocessor.num_image_tokens();
    // The longest question that fits, found through the tokenizer.
    let fits = |n| m.prompt_ids(Task::Vqa, &question(n), 640, 480).is_ok();
    let (mut lo, mut hi) = (1usize, 1024);
    assert!(
        fits(lo) && !fits(hi),
        "1024 characters overflow the tiny model"
    );
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if fits(mid) { lo = mid } else { hi = mid }
    }
    let at_limit = m.prompt_ids(Task::Vqa, &question(lo), 640, 480).unwrap();
    assert!(
        at_limit.len() <= limit && at_limit.len() + 2 > limit,
        "{} vs {limit}",
        at_limit.len()
    );
    let req = |input| Request {
        task: Task::Vqa,
        input,
        options: GenerationOptions {
            max_new_tokens: Some(3),
            ..GenerationOptions::default()
        },
    };
    m.run(&img, &req(question(lo)))
        .expect("a prompt at the limit runs");
    for task in [
        Task::Vqa,
        Task::CaptionToPhraseGrounding,
        Task::OpenVocabularyDetection,
    ] {
        let err = m
            .run(
                &img,
                &Request {
                    task,
                    ..req(question(hi))
                },
            )
            .unwrap_err();
        match &err {
            EngineError::Prompt(PromptError::TooManyTokens {
                limit: l,
                positions: p,
                ..
            }) => {
                assert_eq!((*l, *p), (limit, positions));
            }
            other => panic!("{task}: {other}"),
        }
        assert!(
            err.to_string()
                .contains(&format!("limit of {limit} prompt tokens")),
            "{err}"
        );
    }
}
