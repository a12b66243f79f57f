//! The Hailo split of Florence-2 (Hailo's dynamic_captioning): vision encoder on
//! the CPU at the split's size, then a static-shape text encoder and a decoder
//! with a fixed 32-token window and no cache, which on a Hailo-10H are HEFs.
//!
//! The two static networks sit behind [`SplitNetworks`], implemented by ONNX
//! Runtime over the exporter's stand-ins with the same shapes (`hailo/*.onnx`,
//! [`OnnxStandIns`]) and by HailoRT over the HEFs
//! ([`super::hailo::HailoNetworks`]); the loop below is written once for both.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ort::session::{RunOptions, Session};
use ort::value::Tensor;

use super::config::ModelFiles;
use super::hailo::networks::{self, HailoNetworks, HailoSettings, SplitShapes};
use super::layout::{HAILO_FLORENCE_IMAGE_SIZE, HAILO_FLORENCE_WINDOW, Layout, model_files};
use super::model_dir::{self, ModelError, SessionOptions};
use super::pipeline::{EngineError, Interrupt, missing, ort_err, run_vision};
use super::preprocess::{self, RgbImage};
use super::signature::Graph;

/// A float32 array read from a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Reads a little-endian float32, C-order `.npy` file (format versions 1-3).
pub fn read_npy(path: &Path) -> Result<NpyArray, ModelError> {
    let bytes = std::fs::read(path).map_err(|e| npy_error(path, format!("cannot read: {e}")))?;
    let (shape, start) = npy_header(path, &bytes)?;
    let count: usize = shape.iter().product();
    let body = &bytes[start..];
    if body.len() != count * 4 {
        return Err(npy_error(
            path,
            format!(
                "shape {shape:?} needs {} bytes of data, file has {}",
                count * 4,
                body.len()
            ),
        ));
    }
    let data = body
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(NpyArray { shape, data })
}

/// The shape of a float32 `.npy` file, from its header only.
pub fn npy_shape(path: &Path) -> Result<Vec<usize>, ModelError> {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(65_536 + 12).read_to_end(&mut head))
        .map_err(|e| npy_error(path, format!("cannot read: {e}")))?;
    npy_header(path, &head).map(|(shape, _)| shape)
}

fn npy_error(path: &Path, reason: String) -> ModelError {
    ModelError::Load {
        path: path.to_path_buf(),
        reason,
    }
}

/// The shape and the data offset of a float32 little-endian C-order `.npy`.
fn npy_header(path: &Path, bytes: &[u8]) -> Result<(Vec<usize>, usize), ModelError> {
    let bad = |reason: String| npy_error(path, reason);
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file".into()));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(format!("unsupported .npy version {v}"))),
    };
    let header = start
        .checked_add(header_len)
        .and_then(|end| bytes.get(start..end))
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated header".into()))?;
    if !header.contains("'descr': '<f4'") {
        return Err(bad(format!(
            "expected float32 little-endian data, header {header}"
        )));
    }
    if header.contains("'fortran_order': True") {
        return Err(bad("Fortran-order arrays are not supported".into()));
    }
    let shape_text = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .map(|s| s.trim().trim_start_matches('('))
        .ok_or_else(|| bad(format!("no shape in header {header}")))?;
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|e| bad(format!("bad shape {shape_text:?}: {e}")))?;
    if shape
        .iter()
        .try_fold(4usize, |n, d| n.checked_mul(*d))
        .is_none()
    {
        return Err(bad(format!("shape {shape:?} is too large")));
    }
    Ok((shape, start + header_len))
}

/// The split's two static-shape networks: "run this network on these float
/// tensors" (HEFs on a Hailo device, ONNX stand-ins elsewhere).
pub trait SplitNetworks {
    /// [1, 1, N, D] input embeddings -> [1, 1, N, D] encoder states.
    fn text_encoder(&mut self, embeds: &[f32]) -> Result<Vec<f32>, EngineError>;
    /// Encoder states [1, 1, N, D] and a [1, 1, W, D] window -> logits [1, W, V].
    fn decoder(&mut self, states: &[f32], window: &[f32]) -> Result<Vec<f32>, EngineError>;
    /// The request's deadline, which bounds each following run (if the
    /// networks can be bounded).
    fn set_deadline(&mut self, _deadline: Option<Instant>) {}
}

/// The exporter's ONNX stand-ins for the HEFs.
pub struct OnnxStandIns {
    text_encoder: Session,
    decoder: Session,
    n: usize,
    d: usize,
    window: usize,
}

impl SplitNetworks for OnnxStandIns {
    fn text_encoder(&mut self, embeds: &[f32]) -> Result<Vec<f32>, EngineError> {
        let input = Tensor::from_array(([1usize, 1, self.n, self.d], embeds.to_vec()))
            .map_err(ort_err("hailo text encoder"))?;
        let out = self
            .text_encoder
            .run(ort::inputs! {"inputs_embeds" => input})
            .map_err(ort_err("hailo text encoder"))?;
        let (_, data) = out
            .get("last_hidden_state")
            .ok_or_else(|| missing("hailo text encoder", "last_hidden_state"))?
            .try_extract_tensor::<f32>()
            .map_err(ort_err("hailo text encoder"))?;
        Ok(data.to_vec())
    }

    fn decoder(&mut self, states: &[f32], window: &[f32]) -> Result<Vec<f32>, EngineError> {
        let s = Tensor::from_array(([1usize, 1, self.n, self.d], states.to_vec()))
            .map_err(ort_err("hailo decoder"))?;
        let w = Tensor::from_array(([1usize, 1, self.window, self.d], window.to_vec()))
            .map_err(ort_err("hailo decoder"))?;
        let out = self
            .decoder
            .run(ort::inputs! {"encoder_hidden_states" => s, "inputs_embeds" => w})
            .map_err(ort_err("hailo decoder"))?;
        let (_, data) = out
            .get("logits")
            .ok_or_else(|| missing("hailo decoder", "logits"))?
            .try_extract_tensor::<f32>()
            .map_err(ort_err("hailo decoder"))?;
        Ok(data.to_vec())
    }
}

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
        .ok_or_else(|| ModelError::Load {
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
        let runtime = super::runtime::runtime(options.ort_library.as_deref())?;
        let text_encoder =
            model_dir::open_graph(&runtime, &files, Graph::HailoTextEncoder, options)?;
        let decoder = model_dir::open_graph(&runtime, &files, Graph::HailoDecoder, options)?;
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
    /// itself) on a Hailo device. The device itself is opened lazily, by the
    /// first run or [`HailoSplit::networks_mut`]`().open()`.
    pub fn open_hailo(
        dir: &Path,
        options: &SessionOptions,
        settings: HailoSettings,
    ) -> Result<Self, EngineError> {
        let bridge = settings.bridge()?;
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
            networks::hef_path(dir, networks::ENCODER_HEF),
            networks::hef_path(dir, networks::DECODER_HEF),
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
        let runtime = super::runtime::runtime(options.ort_library.as_deref())?;
        let vision = model_dir::open_graph(&runtime, &files, Graph::VisionEncoder, options)?;
        let word_embedding = read_npy(&hailo_dir(dir).join("word_embedding.npy"))?;
        let d = files.model.text_config.d_model;
        let bad = |path: &str, reason: String| ModelError::Load {
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
    /// `interrupt` is cancelled or its deadline passes (which also bounds
    /// each run).
    pub fn caption_with(
        &mut self,
        image: &RgbImage,
        interrupt: &Interrupt,
    ) -> Result<Vec<u32>, EngineError> {
        interrupt.check()?;
        self.graphs.set_deadline(interrupt.deadline());
        let t = &self.files.model.text_config;
        let (eos, start, d) = (t.eos_token_id, t.decoder_start_token_id, t.d_model);
        let (pixels, shape) = preprocess::pixel_values_at(
            image,
            &self.files.preprocessor,
            self.image_size,
            self.image_size,
        );
        let run_options = RunOptions::new().map_err(ort_err("run options"))?;
        let mut embeds = run_vision(&mut self.vision, pixels, shape, false, &run_options)?.data;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trip_and_errors() {
        let dir = std::env::temp_dir().join(format!("florence-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        let mut h = header.to_string();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(h.len() as u16).to_le_bytes());
        bytes.extend_from_slice(h.as_bytes());
        for v in [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.5] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let ok = dir.join("ok.npy");
        std::fs::write(&ok, &bytes).unwrap();
        let a = read_npy(&ok).unwrap();
        assert_eq!(a.shape, [2, 3]);
        assert_eq!(a.data[5], 6.5);
        let short = dir.join("short.npy");
        std::fs::write(&short, &bytes[..bytes.len() - 4]).unwrap();
        assert!(
            read_npy(&short)
                .unwrap_err()
                .to_string()
                .contains("needs 24 bytes")
        );
        std::fs::write(&short, b"hello").unwrap();
        assert!(read_npy(&short).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
