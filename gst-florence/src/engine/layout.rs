//! The two model directory layouts the engine reads.
//!
//! - onnx-community's (`config.json`, `onnx/*.onnx`, ...; Hailo HEFs and
//!   their embeddings optionally under `hailo/`): every task, on ONNX Runtime,
//!   and captions on a Hailo device when `hailo/` has the split.
//! - hailo-florence's, the Python service's and Hailo's `dynamic_captioning`
//!   example: one flat directory with `vision_encoder.onnx` (384x384),
//!   `florence2_transformer_encoder.hef`, `florence2_transformer_decoder.hef`,
//!   `tokenizer.json`, `caption_embedding.npy`, `word_embedding.npy` (and
//!   optionally `vqa_embedding.npy`). It has no configuration files and no
//!   ONNX text graphs: it runs `<CAPTION>` on a Hailo device and nothing else.
//!   Its configuration is Florence-2's published one, with the text width and
//!   vocabulary read from `word_embedding.npy` (so the exporter's smaller
//!   stand-ins in this layout load too).

use std::path::Path;

use super::config::{ConfigError, GenerationConfig, ModelConfig, ModelFiles, PreprocessorConfig};
use super::hailo::networks::ENCODER_HEF;
use super::hailo_split::npy_shape;
use super::model_dir::ModelError;

/// Which layout a model directory has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    OnnxCommunity,
    HailoFlorence,
}

/// The image size of the hailo-florence split (its vision encoder's input).
pub const HAILO_FLORENCE_IMAGE_SIZE: u32 = 384;
/// The decoder HEF's window of input embeddings.
pub const HAILO_FLORENCE_WINDOW: usize = 32;

// Florence-2-base's published configuration (onnx-community/Florence-2-base-ft),
// the one hailo-florence's HEFs were compiled from.
const BASE_CONFIG: &str = include_str!(
    "../../../tests/fixtures/reference-configs/onnx-community-florence-2-base/config.json"
);
const BASE_GENERATION: &str = include_str!(
    "../../../tests/fixtures/reference-configs/onnx-community-florence-2-base/generation_config.json"
);
const BASE_PREPROCESSOR: &str = include_str!(
    "../../../tests/fixtures/reference-configs/onnx-community-florence-2-base/preprocessor_config.json"
);

impl Layout {
    /// The layout of `dir`: hailo-florence's when it has no `config.json` but
    /// the encoder HEF at its top level.
    pub fn of(dir: &Path) -> Layout {
        if !dir.join("config.json").exists() && dir.join(ENCODER_HEF).is_file() {
            Layout::HailoFlorence
        } else {
            Layout::OnnxCommunity
        }
    }

    /// Whether the layout has ONNX text graphs (every task on ONNX Runtime).
    pub fn has_text_graphs(self) -> bool {
        self == Layout::OnnxCommunity
    }
}

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
        return Err(ModelError::Load {
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
            return Err(ModelError::Load {
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
