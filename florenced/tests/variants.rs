//! The exporter's precision variants beyond what the benchmark's tests write:
//! the graph rewrites behind `_int8mm` and the variants' batchable decoders
//! (their unit tests, on synthetic graphs and the tiny model's graphs), and `_int8mm` itself written into a
//! copy of the tiny model, checked by the exporter and run by `florenced run`
//! against fp32, with its batchable decoder: concurrent requests on the
//! variant share decoder runs and get the ids they get alone.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use gstflorence::engine::image_io;
use gstflorence::engine::registry;
use gstflorence::engine::task::Task;
use gstflorence::engine::{Florence, Request, SessionOptions};

use common::process::succeed;
use common::scratch::Scratch;
use common::{bench_python, model_copies, model_dir, root};

const GRAPHS: [&str; 4] = [
    "vision_encoder",
    "embed_tokens",
    "encoder_model",
    "decoder_model_merged",
];
/// The batchable decoder's pair, which the exporter adds to a variant when
/// the float32 pair is there (the tiny model has it).
const BATCHED: [&str; 2] = ["decoder_cross_key_values", "decoder_model_batched"];

/// The exporter's unit tests: `test_graph_rewrites.py` and
/// `test_batched_variants.py` in `tools/export`.
#[test]
fn exporter_unit_tests_pass() {
    let out = succeed(
        Command::new(bench_python())
            .current_dir(root())
            .args(["-m", "unittest", "discover", "-v"])
            .args(["-s", "tools/export", "-p", "test_*.py"]),
    );
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(report.contains("\nOK"), "{report}");
    for test in [
        "test_the_8_bit_pair_is_batch_invariant_and_close_to_float32",
        "test_dynamic_int8_would_make_rows_depend_on_their_batch",
    ] {
        assert!(report.contains(test), "{test} did not run: {report}");
    }
}

fn results(dir: &Path, variant: &str, task: &str, images: &[String]) -> Vec<serde_json::Value> {
    let out = succeed(
        Command::new(env!("CARGO_BIN_EXE_florenced"))
            .arg("run")
            .arg("--model-dir")
            .arg(dir)
            .args(["--variant", variant, "--threads", "1", "--task", task])
            .args(images),
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["result"].clone())
        .collect()
}

#[test]
fn int8mm_is_written_checked_and_answers_as_fp32_does() {
    let scratch = Scratch::new("variant-int8mm");
    let dir = scratch.path().join("tiny");
    model_copies::copy_dir(&model_dir(), &dir);
    let out = succeed(
        Command::new(bench_python())
            .current_dir(root())
            .arg("tools/export/add_variants.py")
            .arg("--model-dir")
            .arg(&dir)
            .args(["--variants", "int8mm", "--threads", "1"]),
    );
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        log.contains("_int8mm: tokens along float32's greedy path"),
        "{log}"
    );
    for g in GRAPHS.iter().chain(&BATCHED) {
        let file = dir.join(format!("onnx/{g}_int8mm.onnx"));
        assert!(file.is_file(), "{} not written", file.display());
    }
    assert!(
        log.contains(
            "_int8mm batchable decoder (8-bit blocks of 64; cross keys and values: dynamic int8)"
        ) && log.contains("rows in batches vs alone: max difference 0.0e+00"),
        "{log}"
    );

    let images: Vec<String> = std::fs::read_dir(root().join("tests/fixtures/images"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.contains("scene_"))
        .collect();
    assert_eq!(images.len(), 4, "{images:?}");
    // Whole answers: the caption's text, and what `<OD>` found (its labels; the
    // tiny model's boxes are near-ties that `_int8` and `_qdq` move as well).
    let (mut same, mut total) = (0, 0);
    for (task, key) in [("<CAPTION>", None), ("<OD>", Some("labels"))] {
        let fp32 = results(&dir, "", task, &images);
        let int8mm = results(&dir, "_int8mm", task, &images);
        assert_eq!(fp32.len(), images.len());
        assert_eq!(int8mm.len(), images.len());
        let part = |v: &serde_json::Value| key.map_or(v.clone(), |k| v[k].clone());
        same += fp32
            .iter()
            .zip(&int8mm)
            .filter(|(a, b)| part(a) == part(b))
            .count();
        total += images.len();
    }
    eprintln!("_int8mm: {same} of {total} answers as fp32's");
    // 8 of 8 here; one may flip on another CPU's integer kernels.
    assert!(same + 1 >= total, "{same} of {total} answers as fp32's");

    decode_together_on(&dir, "_int8mm", &images[0]);
}

/// A long request and a caption on one shared model of `variant`: the
/// caption decodes beside the long one, both with the ids they get alone.
fn decode_together_on(dir: &Path, variant: &str, image: &str) {
    let options = SessionOptions {
        variant: variant.into(),
        vision_cache: false,
        ..SessionOptions::default()
    };
    let img = image_io::read(Path::new(image), &image_io::ImageLimits::default()).unwrap();
    let mut long = Request::new(Task::MoreDetailedCaption);
    long.options.max_new_tokens = Some(1000);
    long.options.min_new_tokens = Some(1000);
    long.options.num_beams = Some(1);
    let caption = Request::new(Task::Caption);
    let solo = Florence::load(dir, options.clone()).unwrap();
    let want: Vec<Vec<u32>> = [&long, &caption]
        .iter()
        .map(|r| solo.run(&img, r).unwrap().ids)
        .collect();
    drop(solo);

    let users: Vec<Florence> = (0..2)
        .map(|_| Florence::shared(dir, options.clone()).unwrap().0)
        .collect();
    let model = || {
        registry::loaded()
            .into_iter()
            .find(|m| users[0].model_id() == m.id)
            .expect("the shared model is loaded")
    };
    std::thread::scope(|s| {
        let first = s.spawn(|| users[0].run(&img, &long).unwrap());
        let guard = Instant::now() + Duration::from_secs(60);
        while model().decoding < 1 {
            assert!(Instant::now() < guard, "the long request never decoded");
            std::thread::yield_now();
        }
        let out = users[1].run(&img, &caption).unwrap();
        assert_eq!(out.ids, want[1], "the caption beside the long request");
        assert!(out.timings.decode_batch >= 2, "the caption decoded alone");
        assert_eq!(first.join().unwrap().ids, want[0], "the long request");
    });
    let batched: u64 = model().decode_steps.iter().skip(1).sum();
    assert!(batched > 0, "{:?}", model().decode_steps);
}
