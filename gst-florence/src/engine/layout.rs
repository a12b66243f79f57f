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

/// Which layout a model directory has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    OnnxCommunity,
    HailoFlorence,
}

/// File names of the split's two HEFs (as Hailo's dynamic_captioning names them).
pub const ENCODER_HEF: &str = "florence2_transformer_encoder.hef";
pub const DECODER_HEF: &str = "florence2_transformer_decoder.hef";

/// The image size of the hailo-florence split (its vision encoder's input).
pub const HAILO_FLORENCE_IMAGE_SIZE: u32 = 384;
/// The decoder HEF's window of input embeddings.
pub const HAILO_FLORENCE_WINDOW: usize = 32;

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
