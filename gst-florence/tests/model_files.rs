//! The shipped fixtures and the real public config files load through the engine,
//! and each kind of broken model directory is refused with an error naming it.

mod common;

use std::path::{Path, PathBuf};

use gstflorence::engine::onnx::describe::describe;
use gstflorence::engine::onnx::signature::{Graph, Mismatch};
use gstflorence::engine::{ModelError, OnnxError};
use gstflorence::engine::{ModelFiles, SessionOptions};

use common::fixtures;
use common::scratch::Scratch;

fn tiny() -> PathBuf {
    fixtures().join("tiny-florence2")
}

fn options() -> SessionOptions {
    SessionOptions {
        intra_threads: 1,
        ..SessionOptions::default()
    }
}

/// A copy of the tiny model directory that a test may damage.
fn scratch_copy(name: &str) -> (Scratch, PathBuf) {
    let scratch = Scratch::new(name);
    let dst = scratch.model_copy("model");
    (scratch, dst)
}

#[test]
fn every_fixture_graph_has_the_documented_signature() {
    let graphs = describe(&tiny(), &options()).expect("tiny model must load");
    let names: Vec<&str> = graphs.iter().map(|g| g.graph.as_str()).collect();
    assert_eq!(
        names,
        [
            "vision_encoder",
            "embed_tokens",
            "encoder_model",
            "decoder_model_merged",
            "decoder_cross_key_values",
            "decoder_model_batched",
            "text_encoder",
            "decoder"
        ]
    );
    let files = ModelFiles::load(&tiny()).unwrap();
    let layers = files.model.text_config.decoder_layers;
    let merged = &graphs[3];
    // encoder mask, encoder states, embeddings, 4 cache tensors per layer, use_cache_branch.
    assert_eq!(merged.inputs.len(), 3 + 4 * layers + 1);
    assert_eq!(merged.outputs.len(), 1 + 4 * layers);
    let logits = &merged.outputs[0];
    assert_eq!(logits.name, "logits");
    assert_eq!(
        logits.shape[2],
        files.model.text_config.vocab_size.to_string()
    );
    // The batchable decoder: a key and a value per layer from the cross
    // graph; the step takes embeddings, positions, both masks, and per
    // layer its past and cross keys and values, for any number of rows.
    let (cross, step) = (&graphs[4], &graphs[5]);
    assert_eq!((cross.inputs.len(), cross.outputs.len()), (1, 2 * layers));
    assert_eq!(
        (step.inputs.len(), step.outputs.len()),
        (4 + 4 * layers, 1 + 2 * layers)
    );
    assert_eq!(step.outputs[0].name, "logits");
    for p in cross
        .outputs
        .iter()
        .chain(&step.inputs)
        .chain(&step.outputs)
    {
        assert_eq!(p.shape[0], "batch_size", "{}", p.name);
    }
}

#[test]
fn the_fp16_variant_has_the_documented_signature_in_float16() {
    let options = SessionOptions {
        variant: "_fp16".into(),
        ..options()
    };
    let graphs = describe(&tiny(), &options).expect("the _fp16 variant must load");
    for g in &graphs[..4] {
        assert!(
            g.file.to_string_lossy().ends_with("_fp16.onnx"),
            "{}",
            g.file.display()
        );
        // Float tensors in float16 (as onnx-community's fp16 files); ids and masks stay int64.
        for p in g.inputs.iter().chain(&g.outputs) {
            let float = !matches!(
                p.name.as_str(),
                "input_ids" | "attention_mask" | "encoder_attention_mask" | "use_cache_branch"
            );
            assert_eq!(
                p.dtype.to_lowercase().contains("16"),
                float,
                "{} {}: {}",
                g.graph,
                p.name,
                p.dtype
            );
        }
    }
}

#[test]
fn committed_fixtures_stay_under_20_mb() {
    fn size(p: &Path) -> u64 {
        if p.is_dir() {
            std::fs::read_dir(p)
                .unwrap()
                .map(|e| size(&e.unwrap().path()))
                .sum()
        } else {
            p.metadata().unwrap().len()
        }
    }
    let total = size(&fixtures());
    assert!(total < 20_000_000, "tests/fixtures is {total} bytes");
}

#[test]
fn tiny_config_is_consistent() {
    let files = ModelFiles::load(&tiny()).unwrap();
    // The tiny model runs at 384x384: (384/32)^2 + 1 image tokens.
    assert_eq!(files.preprocessor.size.width, 384);
    assert_eq!(files.preprocessor.num_image_tokens(), 145);
    assert_eq!(files.model.num_image_tokens, Some(145));
    assert_eq!(files.generation.num_beams, 3);
    assert_eq!(files.generation.no_repeat_ngram_size, 3);
    assert!(files.dir.join("tokenizer.json").is_file());
    assert!(files.dir.join("tokenizer_config.json").is_file());
}

#[test]
fn public_onnx_community_configs_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/florence-2-base");
    let files = ModelFiles::load(&dir).expect("the public export's configs must load as they are");
    let t = &files.model.text_config;
    assert_eq!(
        (t.d_model, t.decoder_layers, t.decoder_attention_heads),
        (768, 6, 12)
    );
    assert_eq!(t.vocab_size, 51289);
    assert_eq!(files.model.decoder_head_dim(), 64);
    assert_eq!(files.model.vision_config.dim_embed, [128, 256, 512, 1024]);
    assert_eq!(files.preprocessor.num_image_tokens(), 577);
    assert_eq!(files.generation.forced_bos_token_id, Some(0));
    assert_eq!(files.generation.forced_eos_token_id, Some(2));
    assert_eq!(
        files.generation.early_stopping,
        gstflorence::engine::config::EarlyStopping::True
    );
}

#[test]
fn missing_graph_is_named() {
    let (_scratch, dir) = scratch_copy("missing");
    std::fs::remove_file(dir.join("onnx/encoder_model.onnx")).unwrap();
    let err = describe(&dir, &options()).unwrap_err();
    assert!(
        matches!(&err, ModelError::Onnx(OnnxError::MissingGraph { graph: Graph::Encoder, path } ) if path.ends_with("onnx/encoder_model.onnx")),
        "{err}"
    );
}

#[test]
fn truncated_graph_is_a_load_error() {
    let (_scratch, dir) = scratch_copy("truncated");
    let path = dir.join("onnx/decoder_model_merged.onnx");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    let err = describe(&dir, &options()).unwrap_err();
    assert!(
        matches!(err, ModelError::Onnx(OnnxError::Load { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("decoder_model_merged.onnx"));
}

/// The batchable decoder reads its weights from the merged decoder's file
/// (and the merged decoder is then not opened): a damaged merged decoder
/// fails the load all the same, and the error names it.
#[test]
fn a_truncated_merged_decoder_fails_the_batchable_decoder_naming_it() {
    let (_scratch, dir) = scratch_copy("truncated-weights");
    let path = dir.join("onnx/decoder_model_merged.onnx");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    let err = gstflorence::engine::Florence::load(
        &dir,
        SessionOptions {
            graph_cache: None,
            ..options()
        },
    )
    .unwrap_err();
    assert!(
        matches!(&err, ModelError::Onnx(OnnxError::Load { path, .. }) if path.ends_with("onnx/decoder_model_batched.onnx")),
        "{err}"
    );
    assert!(
        err.to_string().contains("its weights are read from")
            && err.to_string().contains("decoder_model_merged.onnx"),
        "{err}"
    );
}

#[test]
fn renamed_input_is_a_signature_error() {
    let (_scratch, dir) = scratch_copy("renamed");
    let path = dir.join("onnx/encoder_model.onnx");
    let bytes = std::fs::read(&path).unwrap();
    // Same length, so the protobuf stays well-formed: only the name changes.
    let from = b"attention_mask";
    let to = b"attention_mazk";
    let mut out = bytes.clone();
    let mut hits = 0;
    for i in 0..out.len() - from.len() {
        if &bytes[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            hits += 1;
        }
    }
    assert!(hits > 0);
    std::fs::write(&path, out).unwrap();
    let err = describe(&dir, &options()).unwrap_err();
    let ModelError::Onnx(OnnxError::Signature {
        graph, problems, ..
    }) = &err
    else {
        panic!("expected a signature error, got {err}");
    };
    assert_eq!(*graph, Graph::Encoder);
    assert!(
        problems
            .iter()
            .any(|p| matches!(p, Mismatch::Missing { name, .. } if name == "attention_mask"))
    );
    assert!(
        err.to_string().contains("missing input `attention_mask`"),
        "{err}"
    );
}

#[test]
fn config_inconsistent_with_graphs_is_refused() {
    let (_scratch, dir) = scratch_copy("inconsistent");
    let path = dir.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let layers = cfg["text_config"]["decoder_layers"].as_u64().unwrap();
    cfg["text_config"]["decoder_layers"] = (layers + 1).into();
    std::fs::write(&path, cfg.to_string()).unwrap();
    let err = describe(&dir, &options()).unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "missing input `past_key_values.{layers}.decoder.key`"
        )),
        "{err}"
    );
}

#[test]
fn missing_directory_and_bad_variant() {
    let err = describe(Path::new("/nonexistent/florence"), &options()).unwrap_err();
    assert!(matches!(err, ModelError::NoDirectory(_)), "{err}");
    let opts = SessionOptions {
        variant: "_int3".into(),
        ..options()
    };
    let err = describe(&tiny(), &opts).unwrap_err();
    assert!(err.to_string().contains("_quantized"), "{err}");
}
