//! The configuration files of a Florence-2 model directory.
//!
//! The public ONNX export (onnx-community) ships the original config layout:
//! `text_config` with BART keys, `vision_config` with `dim_embed`. Every
//! dimension, layer count and token id the engine uses is read from these
//! files; none is hard-coded.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not valid JSON for {what}: {source}")]
    Parse {
        path: PathBuf,
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// `config.json`, the keys the engine needs.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelConfig {
    pub text_config: TextConfig,
    pub vision_config: VisionConfig,
    #[serde(default)]
    pub projection_dim: Option<usize>,
    #[serde(default)]
    pub num_image_tokens: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TextConfig {
    pub d_model: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    pub encoder_attention_heads: usize,
    pub decoder_attention_heads: usize,
    pub vocab_size: usize,
    pub max_position_embeddings: usize,
    pub bos_token_id: u32,
    pub eos_token_id: u32,
    pub pad_token_id: u32,
    pub decoder_start_token_id: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct VisionConfig {
    /// Stage widths; the original layout calls them `dim_embed`, transformers v5 `embed_dim`.
    #[serde(alias = "embed_dim")]
    pub dim_embed: Vec<usize>,
    pub depths: Vec<usize>,
    #[serde(default)]
    pub projection_dim: Option<usize>,
}

/// `generation_config.json`: the decoding defaults.
#[derive(Debug, Clone, Deserialize)]
pub struct GenerationConfig {
    #[serde(default = "one")]
    pub num_beams: usize,
    #[serde(default)]
    pub no_repeat_ngram_size: usize,
    #[serde(default)]
    pub early_stopping: EarlyStopping,
    #[serde(default = "one_f32")]
    pub length_penalty: f32,
    #[serde(default)]
    pub forced_bos_token_id: Option<u32>,
    #[serde(default)]
    pub forced_eos_token_id: Option<u32>,
    #[serde(default)]
    pub decoder_start_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<u32>,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    #[serde(default)]
    pub max_new_tokens: Option<usize>,
}

/// transformers accepts `true`, `false` or `"never"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EarlyStopping {
    #[default]
    False,
    True,
    Never,
}

impl<'de> Deserialize<'de> for EarlyStopping {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Bool(true) => Ok(Self::True),
            serde_json::Value::Bool(false) | serde_json::Value::Null => Ok(Self::False),
            serde_json::Value::String(s) if s == "never" => Ok(Self::Never),
            other => Err(serde::de::Error::custom(format!(
                "early_stopping must be true, false or \"never\", not {other}"
            ))),
        }
    }
}

fn one() -> usize {
    1
}
fn one_f32() -> f32 {
    1.0
}

/// `preprocessor_config.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct PreprocessorConfig {
    pub size: ImageSize,
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
    #[serde(default = "default_rescale")]
    pub rescale_factor: f64,
    #[serde(default = "yes")]
    pub do_resize: bool,
    #[serde(default = "yes")]
    pub do_rescale: bool,
    #[serde(default = "yes")]
    pub do_normalize: bool,
    #[serde(default = "bicubic")]
    pub resample: u32,
    #[serde(default)]
    pub image_seq_length: Option<usize>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct ImageSize {
    pub height: u32,
    pub width: u32,
}

fn default_rescale() -> f64 {
    1.0 / 255.0
}
fn yes() -> bool {
    true
}
fn bicubic() -> u32 {
    3
}

/// Everything read from a model directory's JSON files, checked for consistency.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    pub dir: PathBuf,
    pub model: ModelConfig,
    pub generation: GenerationConfig,
    pub preprocessor: PreprocessorConfig,
}

fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &'static str,
) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_path_buf(),
        what,
        source,
    })
}

impl ModelConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let cfg: Self = read_json(path, "a Florence-2 config.json")?;
        cfg.check(path)?;
        Ok(cfg)
    }

    fn check(&self, path: &Path) -> Result<(), ConfigError> {
        let t = &self.text_config;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        if t.d_model == 0 || t.decoder_attention_heads == 0 || t.encoder_attention_heads == 0 {
            return Err(invalid(
                "text_config: d_model and attention heads must be positive".into(),
            ));
        }
        if !t.d_model.is_multiple_of(t.decoder_attention_heads) {
            return Err(invalid(format!(
                "text_config: d_model {} is not divisible by decoder_attention_heads {}",
                t.d_model, t.decoder_attention_heads
            )));
        }
        for (name, id) in [
            ("bos_token_id", t.bos_token_id),
            ("eos_token_id", t.eos_token_id),
            ("pad_token_id", t.pad_token_id),
            ("decoder_start_token_id", t.decoder_start_token_id),
        ] {
            if id as usize >= t.vocab_size {
                return Err(invalid(format!(
                    "text_config.{name} {id} is outside the vocabulary (vocab_size {})",
                    t.vocab_size
                )));
            }
        }
        if let Some(p) = self.projection_dim.or(self.vision_config.projection_dim)
            && p != t.d_model
        {
            return Err(invalid(format!(
                "projection_dim {p} differs from text_config.d_model {}",
                t.d_model
            )));
        }
        if self.vision_config.dim_embed.len() != self.vision_config.depths.len() {
            return Err(invalid(format!(
                "vision_config: {} stage widths (dim_embed) but {} depths",
                self.vision_config.dim_embed.len(),
                self.vision_config.depths.len()
            )));
        }
        Ok(())
    }

    /// Size of one attention head in the decoder (the K/V cache's last axis).
    pub fn decoder_head_dim(&self) -> usize {
        self.text_config.d_model / self.text_config.decoder_attention_heads
    }
}

impl GenerationConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        read_json(path, "a generation_config.json")
    }
}

impl PreprocessorConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let cfg: Self = read_json(path, "a preprocessor_config.json")?;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        if cfg.size.width == 0 || cfg.size.height == 0 {
            return Err(invalid("size must be positive".into()));
        }
        if !cfg.size.width.is_multiple_of(32) || !cfg.size.height.is_multiple_of(32) {
            return Err(invalid(format!(
                "size {}x{} is not a multiple of 32 (the vision encoder's stride)",
                cfg.size.width, cfg.size.height
            )));
        }
        if cfg.image_std.iter().any(|s| *s <= 0.0) {
            return Err(invalid(format!(
                "image_std {:?} must be positive",
                cfg.image_std
            )));
        }
        if cfg.resample != 3 {
            return Err(invalid(format!(
                "resample {} is not supported (Florence-2 uses 3, bicubic)",
                cfg.resample
            )));
        }
        Ok(cfg)
    }

    /// Image tokens the vision encoder yields: (H/32)(W/32) + 1.
    pub fn num_image_tokens(&self) -> usize {
        (self.size.height as usize / 32) * (self.size.width as usize / 32) + 1
    }
}

impl ModelFiles {
    /// Reads `config.json`, `generation_config.json` and `preprocessor_config.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        let model = ModelConfig::load(&dir.join("config.json"))?;
        let generation = GenerationConfig::load(&dir.join("generation_config.json"))?;
        let preprocessor = PreprocessorConfig::load(&dir.join("preprocessor_config.json"))?;
        let files = ModelFiles {
            dir: dir.to_path_buf(),
            model,
            generation,
            preprocessor,
        };
        files.check()?;
        Ok(files)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if let Some(n) = self.model.num_image_tokens
            && n != self.preprocessor.num_image_tokens()
        {
            return Err(ConfigError::Invalid {
                path: self.dir.join("config.json"),
                message: format!(
                    "num_image_tokens {n} does not match preprocessor size {}x{} ({} tokens)",
                    self.preprocessor.size.width,
                    self.preprocessor.size.height,
                    self.preprocessor.num_image_tokens()
                ),
            });
        }
        Ok(())
    }
}
