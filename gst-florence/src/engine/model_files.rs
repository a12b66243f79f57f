//! The configuration of a model directory in either layout: the directory's
//! own files (onnx-community's), or Florence-2-base's published ones built
//! into the engine (hailo-florence's layout has none; see `data/README.md`).

use std::path::Path;

use super::config::{ConfigError, GenerationConfig, ModelConfig, ModelFiles, PreprocessorConfig};
use super::layout::{HAILO_FLORENCE_IMAGE_SIZE, Layout};
use super::model_error::ModelError;
use super::npy::npy_shape;

// Florence-2-base's published configuration (onnx-community/Florence-2-base-ft),
// the one hailo-florence's HEFs were compiled from.
const BASE_CONFIG: &str = include_str!("../../data/florence-2-base/config.json");
const BASE_GENERATION: &str = include_str!("../../data/florence-2-base/generation_config.json");
const BASE_PREPROCESSOR: &str = include_str!("../../data/florence-2-base/preprocessor_config.json");

/// The configuration of a model directory in either layout.
pub fn model_files(dir: &Path) -> Result<ModelFiles, ModelError> {
    match Layout::of(dir) {
        Layout::OnnxCommunity => Ok(ModelFiles::load(dir)?),
        Layout::HailoFlorence => hailo_florence_files(dir),
    }
}

/// Florence-2-base's configuration with the width and vocabulary of `dir`'s
/// `word_embedding.npy` and the split's 384x384 input.
fn hailo_florence_files(dir: &Path) -> Result<ModelFiles, ModelError> {
    let builtin = |what: &'static str, e: serde_json::Error| {
        ModelError::Config(ConfigError::Parse {
            path: dir.join(what),
            what: "the built-in Florence-2-base configuration",
            source: e,
        })
    };
    let mut model: ModelConfig =
        serde_json::from_str(BASE_CONFIG).map_err(|e| builtin("config.json", e))?;
    let generation: GenerationConfig =
        serde_json::from_str(BASE_GENERATION).map_err(|e| builtin("generation_config.json", e))?;
    let mut preprocessor: PreprocessorConfig = serde_json::from_str(BASE_PREPROCESSOR)
        .map_err(|e| builtin("preprocessor_config.json", e))?;
    let table = dir.join("word_embedding.npy");
    let shape = npy_shape(&table)?;
    let [vocab, d_model] = shape[..] else {
        return Err(ModelError::File {
            path: table,
            reason: format!("shape {shape:?}, expected [vocab, d_model]"),
        });
    };
    let t = &mut model.text_config;
    for (name, id) in [
        ("eos_token_id", t.eos_token_id),
        ("decoder_start_token_id", t.decoder_start_token_id),
    ] {
        if id as usize >= vocab {
            return Err(ModelError::File {
                path: table,
                reason: format!("{vocab} rows: Florence-2's {name} {id} is not among them"),
            });
        }
    }
    // Layer and head counts stay Florence-2-base's: without ONNX text graphs
    // nothing reads them.
    t.d_model = d_model;
    t.vocab_size = vocab;
    model.projection_dim = None;
    model.vision_config.projection_dim = None;
    model.num_image_tokens = None;
    preprocessor.size.width = HAILO_FLORENCE_IMAGE_SIZE;
    preprocessor.size.height = HAILO_FLORENCE_IMAGE_SIZE;
    preprocessor.image_seq_length = None;
    Ok(ModelFiles {
        dir: dir.to_path_buf(),
        model,
        generation,
        preprocessor,
    })
}
