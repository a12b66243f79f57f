//! A user's handle on a loaded Florence-2 model: the shared [`Model`]
//! (tokenizer, post-processing, the backends and their weights) plus what is
//! this user's alone: the vision-feature cache of its last image and its VQA
//! template. Prompts, decoding parameters and post-processing are written
//! once here, above the [`Backend`]s that run the networks.
//!
//! Handles made with [`Florence::shared`] on the same key share one
//! [`Model`] ([`super::registry`]); their requests run at the same time, each
//! with its own activations, key/value cache and interrupt.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use super::backend::{Backend, DeviceState, Generated, Job};
use super::backend_choice::BackendKind;
use super::config::ModelFiles;
use super::error::EngineError;
use super::generate::{DecodeParams, Sampling};
use super::interrupt::Interrupt;
use super::layout::Layout;
use super::load::LoadOptions;
pub use super::model::DEFAULT_VQA_TEMPLATE;
use super::model::Model;
use super::model_error::ModelError;
use super::onnx::execution_provider::ExecutionProvider;
use super::onnx::graph_cache::GraphSource;
use super::onnx::signature::Graph;
use super::output::{Output, ms};
use super::postprocess::TaskResult;
use super::preprocess::RgbImage;
use super::registry::{self, Acquired};
use super::request::{DEFAULT_MAX_NEW_TOKENS, GenerationOptions, MAX_NEW_TOKENS_LIMIT, Request};
use super::task::{PromptError, Task, TaskInput, build_prompt};
use super::vision_cache::VisionCache;

/// A loaded Florence-2 model directory, as one user sees it.
pub struct Florence {
    model: Arc<Model>,
    /// This user's template (florence.json's unless it set its own).
    vqa_template: String,
    /// This user's last image: another user's frames never evict it.
    vision: VisionCache,
    /// The provider the ONNX graphs run on (a load with one the library
    /// lacks fails; users share a model only with the same provider).
    execution_provider: ExecutionProvider,
    /// The slowdown this user's requests accept from decoding in a batch.
    decode_slowdown: f64,
}

impl std::fmt::Debug for Florence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Florence")
            .field("model", &self.model.id)
            .field("dir", &self.model.files.dir)
            .field("variant", &self.model.variant)
            .field("captions", &self.caption_backend())
            .finish()
    }
}

impl Florence {
    /// Loads and validates a model directory in either layout, on the
    /// backends `options.backend` chooses ([`Florence::backend_reason`] says
    /// which and why), for this caller alone (see [`Florence::shared`]).
    /// Plain [`super::onnx::session::SessionOptions`] load on ONNX Runtime alone.
    pub fn load(dir: &Path, options: impl Into<LoadOptions>) -> Result<Self, ModelError> {
        let options = options.into();
        let model = Model::load(dir, &options)?;
        Ok(Self::user_of(Arc::new(model), &options))
    }

    /// [`Florence::load`] through the process's [`registry`]: every caller
    /// with the same directory and graph-changing options gets the same
    /// loaded model (loaded once, released when its last user drops it),
    /// each with its own vision cache and VQA template.
    pub fn shared(
        dir: &Path,
        options: impl Into<LoadOptions>,
    ) -> Result<(Self, Acquired), ModelError> {
        let options = options.into();
        let (model, acquired) = registry::acquire(dir, &options)?;
        Ok((Self::user_of(model, &options), acquired))
    }

    fn user_of(model: Arc<Model>, options: &LoadOptions) -> Self {
        Florence {
            vqa_template: model.vqa_template.clone(),
            vision: VisionCache::new(options.session.vision_cache),
            execution_provider: options.session.execution_provider.clone(),
            decode_slowdown: options.session.decode_slowdown,
            model,
        }
    }

    /// The loaded model's process-unique id: equal for users that share it.
    pub fn model_id(&self) -> u64 {
        self.model.id
    }

    /// Holds the model's decode batch as a request on its way to it does
    /// (encoding its image and prompt): the batch waits before its next
    /// step, each member at most within its bound, until the returned value
    /// drops. Requests hold it by themselves while they encode; this is for
    /// tests of the scheduler, which need a request on its way for as long
    /// as they choose.
    #[doc(hidden)]
    pub fn arriving(&self) -> impl Send + '_ {
        self.model
            .backends
            .iter()
            .filter_map(|b| b.arriving())
            .collect::<Vec<_>>()
    }

    /// How many handles use this loaded model now (this one included).
    pub fn model_users(&self) -> usize {
        Arc::strong_count(&self.model)
    }

    /// The directory's layout: hailo-florence's runs only captions, on a
    /// Hailo device.
    pub fn layout(&self) -> Layout {
        self.model.layout
    }

    /// Whether `task` can run on this model directory at all.
    pub fn check_task(&self, task: Task) -> Result<(), EngineError> {
        if self.model.layout.has_text_graphs() || task == Task::Caption {
            return Ok(());
        }
        Err(EngineError::TaskUnavailable {
            task: task.token(),
            dir: self.model.files.dir.clone(),
            reason: "this directory has hailo-florence's layout (HEFs, no ONNX text graphs), \
                     which runs only <CAPTION> on a Hailo device; other tasks need a model in \
                     the onnx-community layout",
        })
    }

    /// The backend that runs `task`; `None` when none loaded does.
    fn backend_for(&self, task: Task) -> Option<&dyn Backend> {
        self.model
            .backends
            .iter()
            .find(|b| b.serves(task))
            .map(|b| b.as_ref())
    }

    /// The backend that runs captions (`/health`'s and `hailo-device`'s subject).
    pub fn caption_backend(&self) -> BackendKind {
        self.backend_for(Task::Caption)
            .map_or(BackendKind::Onnx, |b| b.kind())
    }

    /// The ONNX Runtime execution provider the model's ONNX graphs run on.
    pub fn execution_provider(&self) -> &ExecutionProvider {
        &self.execution_provider
    }

    /// Why captions run where they do (`backend=auto`'s choice and its cause).
    pub fn backend_reason(&self) -> &str {
        &self.model.backend_reason
    }

    /// The state of the device captions run on; `None` without a device.
    pub fn device_state(&self) -> Option<DeviceState> {
        self.backend_for(Task::Caption)
            .and_then(|b| b.device_state())
    }

    /// Florence2PostProcessor's result for a generated text.
    pub fn post_process(&self, task: Task, raw_text: &str, width: u32, height: u32) -> TaskResult {
        self.model
            .post
            .parse(task.parse_kind(), raw_text, width, height)
    }

    /// Drops the kept vision features ([`super::onnx::session::SessionOptions::vision_cache`]), so the
    /// next run encodes its image again even if it is the same one: this
    /// user's, and the recent images the model keeps for all its users
    /// (theirs then encode their next image again too; encodes in flight
    /// are still waited for).
    pub fn forget_vision(&self) {
        self.vision.clear();
        self.model.shared_vision.clear();
    }

    /// Where each ONNX graph was loaded from (the optimised-graph cache or the model file).
    pub fn graph_sources(&self) -> &[(Graph, GraphSource)] {
        self.model
            .backends
            .iter()
            .map(|b| b.graph_sources())
            .find(|s| !s.is_empty())
            .unwrap_or(&[])
    }

    pub fn files(&self) -> &ModelFiles {
        &self.model.files
    }

    pub fn vqa_template(&self) -> &str {
        &self.vqa_template
    }

    /// Replaces the VQA prompt template (it must contain `{question}`).
    pub fn set_vqa_template(&mut self, template: &str) -> Result<(), PromptError> {
        if !template.contains("{question}") {
            return Err(PromptError::BadVqaTemplate(template.to_owned()));
        }
        self.vqa_template = template.to_owned();
        Ok(())
    }

    /// Token ids of `<s>` + prompt + `</s>`, as the reference processor produces them.
    pub fn prompt_ids(
        &self,
        task: Task,
        input: &TaskInput,
        width: u32,
        height: u32,
    ) -> Result<Vec<u32>, EngineError> {
        self.check_task(task)?;
        let prompt = build_prompt(task, input, width, height, &self.vqa_template)?;
        let bos = self.token_text(self.model.files.model.text_config.bos_token_id)?;
        let eos = self.token_text(self.model.files.model.text_config.eos_token_id)?;
        let enc = self
            .model
            .tokenizer
            .encode(format!("{bos}{prompt}{eos}"), false)
            .map_err(|e| EngineError::Tokenizer(e.to_string()))?;
        let ids = enc.get_ids().to_vec();
        // The text encoder's learned positions cover image tokens and prompt together;
        // a longer input would index past its position table inside ONNX Runtime.
        let positions = self.model.files.model.text_config.max_position_embeddings;
        let image_tokens = self.model.files.preprocessor.num_image_tokens();
        let limit = positions.saturating_sub(image_tokens);
        if ids.len() > limit {
            return Err(PromptError::TooManyTokens {
                prompt_tokens: ids.len(),
                limit,
                positions,
                image_tokens,
            }
            .into());
        }
        Ok(ids)
    }

    fn token_text(&self, id: u32) -> Result<String, EngineError> {
        self.model.tokenizer.id_to_token(id).ok_or_else(|| {
            EngineError::Tokenizer(format!("token id {id} is not in the vocabulary"))
        })
    }

    /// Decodes ids with special tokens kept, as `batch_decode(skip_special_tokens=False)`.
    pub fn decode_ids(&self, ids: &[u32]) -> Result<String, EngineError> {
        let vocab = self.model.tokenizer.get_vocab_size(true) as u32;
        let known: Vec<u32> = ids.iter().copied().filter(|&i| i < vocab).collect();
        self.model
            .tokenizer
            .decode(&known, false)
            .map_err(|e| EngineError::Tokenizer(e.to_string()))
    }

    /// Decoding parameters for a request, defaults from generation_config.json.
    pub fn decode_params(&self, o: &GenerationOptions) -> Result<DecodeParams, EngineError> {
        let g = &self.model.files.generation;
        let t = &self.model.files.model.text_config;
        let max_new_tokens = o
            .max_new_tokens
            .or(g.max_new_tokens)
            .unwrap_or(DEFAULT_MAX_NEW_TOKENS);
        if max_new_tokens == 0 || max_new_tokens > MAX_NEW_TOKENS_LIMIT {
            return Err(EngineError::Parameter(format!(
                "max_new_tokens must be 1..={MAX_NEW_TOKENS_LIMIT}, got {max_new_tokens}"
            )));
        }
        // The decoder's learned positions bound the sequence (start token included).
        let max_new_tokens = max_new_tokens.min(t.max_position_embeddings.saturating_sub(1).max(1));
        let min_new_tokens = o.min_new_tokens.unwrap_or(0);
        if min_new_tokens > max_new_tokens {
            return Err(EngineError::Parameter(format!(
                "min_new_tokens {min_new_tokens} exceeds max_new_tokens {max_new_tokens}"
            )));
        }
        let num_beams = o.num_beams.unwrap_or(g.num_beams).max(1);
        if num_beams > 16 {
            return Err(EngineError::Parameter(format!(
                "num_beams must be 1..=16, got {num_beams}"
            )));
        }
        let sampling = match o.temperature {
            Some(t) if !t.is_finite() || t < 0.0 => {
                return Err(EngineError::Parameter(format!(
                    "temperature must be >= 0, got {t}"
                )));
            }
            Some(t) if t > 0.0 => {
                let top_p = o.top_p.unwrap_or(1.0);
                if !(top_p > 0.0 && top_p <= 1.0) {
                    return Err(EngineError::Parameter(format!(
                        "top_p must be in (0, 1], got {top_p}"
                    )));
                }
                Some(Sampling {
                    temperature: t,
                    top_k: o.top_k.unwrap_or(50),
                    top_p,
                    seed: o.seed.unwrap_or_else(|| {
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_nanos() as u64)
                    }),
                })
            }
            _ => None,
        };
        let length_penalty = o.length_penalty.unwrap_or(g.length_penalty);
        if !length_penalty.is_finite() {
            return Err(EngineError::Parameter(
                "length_penalty must be finite".into(),
            ));
        }
        Ok(DecodeParams {
            max_new_tokens,
            min_new_tokens,
            num_beams,
            no_repeat_ngram_size: o.no_repeat_ngram_size.unwrap_or(g.no_repeat_ngram_size),
            length_penalty,
            early_stopping: o.early_stopping.unwrap_or(g.early_stopping),
            decoder_start: g.decoder_start_token_id.unwrap_or(t.decoder_start_token_id),
            eos: g.eos_token_id.unwrap_or(t.eos_token_id),
            pad: g.pad_token_id.unwrap_or(t.pad_token_id),
            forced_bos: g.forced_bos_token_id,
            forced_eos: g.forced_eos_token_id,
            sampling,
        })
    }

    /// Runs one request on one image.
    pub fn run(&self, image: &RgbImage, req: &Request) -> Result<Output, EngineError> {
        self.run_with(image, req, &Interrupt::new())
    }

    /// [`Florence::run`] that stops early with [`EngineError::Interrupted`]
    /// when `interrupt` is cancelled or its deadline passes (also while it
    /// waits for another run on this model to finish).
    pub fn run_with(
        &self,
        image: &RgbImage,
        req: &Request,
        interrupt: &Interrupt,
    ) -> Result<Output, EngineError> {
        interrupt.check()?;
        let _in_flight = self.model.start_request();
        let t0 = Instant::now();
        let params = self.decode_params(&req.options)?;
        let prompt = self.prompt_ids(req.task, &req.input, image.width, image.height)?;
        let Some(backend) = self.backend_for(req.task) else {
            // Captions of hailo-florence's layout without a device.
            return Err(EngineError::TaskUnavailable {
                task: req.task.token(),
                dir: self.model.files.dir.clone(),
                reason: "hailo-florence's layout runs captions only on a Hailo device, \
                         and none was loaded",
            });
        };
        let job = Job {
            image,
            prompt: &prompt,
            params: &params,
            vision: &self.vision,
            shared_vision: &self.model.shared_vision,
            decode_slowdown: self.decode_slowdown,
        };
        let Generated {
            decoded,
            mut timings,
        } = backend.generate(job, interrupt)?;

        let t = Instant::now();
        let raw_text = self.decode_ids(&decoded.ids)?;
        let result =
            self.model
                .post
                .parse(req.task.parse_kind(), &raw_text, image.width, image.height);
        timings.postprocess_ms = ms(t.elapsed());
        timings.total_ms = ms(t0.elapsed());
        Ok(Output {
            task: req.task.token().to_owned(),
            raw_text,
            result,
            token_count: decoded.ids.len().saturating_sub(1),
            ids: decoded.ids,
            margins: decoded.margins,
            image_size: [image.width, image.height],
            backend: backend.kind(),
            timings,
        })
    }
}
