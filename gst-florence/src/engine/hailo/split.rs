//! The Hailo split of Florence-2 (Hailo's dynamic_captioning): vision encoder on
//! the CPU at the split's size, then a static-shape text encoder and a decoder
//! with a fixed 32-token window and no cache, which on a Hailo-10H are HEFs.
//!
//! The two static networks sit behind [`SplitNetworks`], implemented by ONNX
//! Runtime over the exporter's stand-ins with the same shapes (`hailo/*.onnx`,
//! [`super::split_networks::OnnxStandIns`]) and by HailoRT over the HEFs
//! ([`super::networks::HailoNetworks`]); the loop below is written once for both.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ort::session::Session;

use super::bridge::Bridge;
use super::networks::{self, HailoNetworks, HailoSettings, SplitShapes};
use super::split_networks::{OnnxStandIns, SplitNetworks};
use crate::engine::config::ModelFiles;
use crate::engine::error::EngineError;
use crate::engine::interrupt::Interrupt;
use crate::engine::layout::{
    DECODER_HEF, ENCODER_HEF, HAILO_FLORENCE_IMAGE_SIZE, HAILO_FLORENCE_WINDOW, Layout,
};
use crate::engine::model_error::ModelError;
use crate::engine::model_files::model_files;
use crate::engine::npy::{NpyArray, read_npy};
use crate::engine::onnx::session::{self, SessionOptions};
use crate::engine::onnx::signature::Graph;
use crate::engine::onnx::tensors::{run_options, run_vision};
use crate::engine::preprocess::{self, RgbImage};

/// Everything the split loop needs besides the two static graphs.
pub struct HailoSplit<G> {
    files: ModelFiles,
    vision: Session,
    graphs: G,
    caption_embedding: NpyArray,
    word_embedding: NpyArray,
    image_size: u32,
    window: usize,
}

/// `hailo/hailo_split.json`, written by the exporter.
#[derive(Debug, serde::Deserialize)]
struct SplitConfig {
    image_size: u32,
    window: usize,
}

/// Where the split's files are: `hailo/` in the onnx-community layout, the
/// directory itself in hailo-florence's.
fn hailo_dir(dir: &Path) -> PathBuf {
    match Layout::of(dir) {
        Layout::OnnxCommunity => dir.join("hailo"),
        Layout::HailoFlorence => dir.to_path_buf(),
    }
}

fn read_split_config(dir: &Path) -> Result<SplitConfig, ModelError> {
    let cfg_path = hailo_dir(dir).join("hailo_split.json");
    // hailo-florence's layout has no such file: its split is the published one.
    if Layout::of(dir) == Layout::HailoFlorence && !cfg_path.exists() {
        return Ok(SplitConfig {
            image_size: HAILO_FLORENCE_IMAGE_SIZE,
            window: HAILO_FLORENCE_WINDOW,
        });
    }
    std::fs::read_to_string(&cfg_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .ok_or_else(|| ModelError::File {
            path: cfg_path.clone(),
            reason: "missing or not valid JSON with image_size and window".into(),
        })
}

/// The encoder's sequence length: the vision encoder's tokens at the split's
/// size ((size / 32)^2 + 1) plus the prompt's.
fn encoder_tokens(cfg: &SplitConfig, caption_embedding: &NpyArray, d: usize) -> usize {
    (cfg.image_size as usize / 32).pow(2) + 1 + caption_embedding.data.len() / d
}

impl HailoSplit<OnnxStandIns> {
    /// Opens the split with the ONNX stand-ins of `dir/hailo/`.
    pub fn open_onnx(dir: &Path, options: &SessionOptions) -> Result<Self, ModelError> {
        let files = model_files(dir)?;
        let cfg = read_split_config(dir)?;
        let runtime = crate::engine::onnx::runtime::runtime(options.ort_library.as_deref())?;
        let text_encoder = session::open_graph(&runtime, &files, Graph::HailoTextEncoder, options)?;
        let decoder = session::open_graph(&runtime, &files, Graph::HailoDecoder, options)?;
        let d = files.model.text_config.d_model;
        let caption_embedding = read_npy(&hailo_dir(dir).join("caption_embedding.npy"))?;
        let n = encoder_tokens(&cfg, &caption_embedding, d);
        let graphs = OnnxStandIns {
            text_encoder,
            decoder,
            n,
            d,
            window: cfg.window,
        };
        Self::new(dir, files, graphs, cfg, caption_embedding, options)
    }
}

impl HailoSplit<HailoNetworks> {
    /// Opens the split with the HEFs of `dir` (`hailo/` or the directory
    /// itself) on a Hailo device through `bridge`. The device itself is opened
    /// lazily, by the first run or [`HailoSplit::networks_mut`]`().open()`.
    pub fn open_hailo(
        dir: &Path,
        options: &SessionOptions,
        bridge: Arc<Bridge>,
        settings: HailoSettings,
    ) -> Result<Self, EngineError> {
        let files = model_files(dir)?;
        let cfg = read_split_config(dir)?;
        let d = files.model.text_config.d_model;
        let caption_embedding = read_npy(&hailo_dir(dir).join("caption_embedding.npy"))?;
        let shapes = SplitShapes {
            tokens: encoder_tokens(&cfg, &caption_embedding, d),
            d_model: d,
            window: cfg.window,
            vocab: files.model.text_config.vocab_size,
        };
        let networks = HailoNetworks::new(
            bridge,
            networks::hef_path(dir, ENCODER_HEF),
            networks::hef_path(dir, DECODER_HEF),
            shapes,
            settings,
        );
        Ok(Self::new(
            dir,
            files,
            networks,
            cfg,
            caption_embedding,
            options,
        )?)
    }
}

impl<G: SplitNetworks> HailoSplit<G> {
    fn new(
        dir: &Path,
        files: ModelFiles,
        graphs: G,
        cfg: SplitConfig,
        caption_embedding: NpyArray,
        options: &SessionOptions,
    ) -> Result<Self, ModelError> {
        let runtime = crate::engine::onnx::runtime::runtime(options.ort_library.as_deref())?;
        let vision = session::open_graph(&runtime, &files, Graph::VisionEncoder, options)?;
        let word_embedding = read_npy(&hailo_dir(dir).join("word_embedding.npy"))?;
        let d = files.model.text_config.d_model;
        let bad = |path: &str, reason: String| ModelError::File {
            path: hailo_dir(dir).join(path),
            reason,
        };
        if word_embedding.shape.len() != 2 || word_embedding.shape[1] != d {
            return Err(bad(
                "word_embedding.npy",
                format!("shape {:?}, expected [vocab, {d}]", word_embedding.shape),
            ));
        }
        if caption_embedding.shape.len() != 4 || caption_embedding.shape[3] != d {
            return Err(bad(
                "caption_embedding.npy",
                format!(
                    "shape {:?}, expected [1, 1, P, {d}]",
                    caption_embedding.shape
                ),
            ));
        }
        Ok(HailoSplit {
            files,
            vision,
            graphs,
            caption_embedding,
            word_embedding,
            image_size: cfg.image_size,
            window: cfg.window,
        })
    }

    /// The decoder's start token, which the caption's sequence begins with.
    pub fn start_token(&self) -> u32 {
        self.files.model.text_config.decoder_start_token_id
    }

    pub fn networks(&self) -> &G {
        &self.graphs
    }

    /// The two networks (to open or release a Hailo device, for instance).
    pub fn networks_mut(&mut self) -> &mut G {
        &mut self.graphs
    }

    fn embedding(&self, token: u32) -> Result<&[f32], EngineError> {
        let d = self.word_embedding.shape[1];
        self.word_embedding
            .data
            .get(token as usize * d..(token as usize + 1) * d)
            .ok_or_else(|| EngineError::Output {
                stage: "hailo decoder",
                name: "logits".into(),
                message: format!("token {token} outside word_embedding.npy"),
            })
    }

    /// The greedy 32-window caption loop: returns the generated tokens (EOS included).
    pub fn caption(&mut self, image: &RgbImage) -> Result<Vec<u32>, EngineError> {
        self.caption_with(image, &Interrupt::new())
    }

    /// [`HailoSplit::caption`] that stops between network runs when
    /// `interrupt` is cancelled or its deadline passes.
    pub fn caption_with(
        &mut self,
        image: &RgbImage,
        interrupt: &Interrupt,
    ) -> Result<Vec<u32>, EngineError> {
        interrupt.check()?;
        let t = &self.files.model.text_config;
        let (eos, start, d) = (t.eos_token_id, t.decoder_start_token_id, t.d_model);
        let (pixels, shape) = preprocess::pixel_values_at(
            image,
            &self.files.preprocessor,
            self.image_size,
            self.image_size,
        );
        let (run_options, _timer) = run_options(interrupt, Vec::new())?;
        let mut embeds = run_vision(&mut self.vision, pixels, shape, false, &run_options)
            .map_err(|e| interrupt.explain(e))?
            .data;
        embeds.extend_from_slice(&self.caption_embedding.data);
        interrupt.check()?;
        let states = self.graphs.text_encoder(&embeds)?;
        let mut window = vec![0f32; self.window * d];
        window[..d].copy_from_slice(self.embedding(start)?);
        let mut tokens = Vec::new();
        for step in 0..self.window {
            interrupt.check()?;
            let logits = self.graphs.decoder(&states, &window)?;
            let vocab = logits.len() / self.window;
            let row = &logits[step * vocab..(step + 1) * vocab];
            let mut best = 0;
            for (i, v) in row.iter().enumerate() {
                if *v > row[best] {
                    best = i;
                }
            }
            let token = best as u32;
            tokens.push(token);
            if token == eos || step + 1 >= self.window {
                break;
            }
            window[(step + 1) * d..(step + 2) * d].copy_from_slice(self.embedding(token)?);
        }
        Ok(tokens)
    }
}
