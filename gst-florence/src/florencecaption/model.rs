//! Loading the model and checking the settings against it.
//!
//! The model loads at NULL->READY (a missing or broken model fails that
//! change), stays loaded across READY<->PAUSED cycles, is reloaded at
//! READY->PAUSED only if a property it depends on changed in READY, and is
//! dropped at READY->NULL.
//!
//! Loads go through the engine's registry: instances with the same model
//! directory and graph-changing properties share one loaded model (its
//! weights once per process), each with its own vision cache, VQA template
//! and running request. Each load posts a `florence-model` element message
//! saying which loaded model the instance uses and how many users it has.

use std::sync::Arc;
use std::time::Instant;

use gst::prelude::*;
use gst::subclass::prelude::*;

use super::imp::{CAT, FlorenceCaption, State};
use super::ort_log::routed;
use super::settings::{HailoProps, Settings};
use super::{Backend, Mode};
use crate::engine::cpus::usable_threads;
use crate::engine::{
    BackendKind, ExecutionProvider, Florence, LoadOptions, Request, SessionOptions,
};
use crate::protocol::ModelInUse;

/// What a loaded model depends on: a change to any of it reloads the model.
#[derive(Debug, Clone, PartialEq)]
struct ModelKey {
    backend: Backend,
    hailo: HailoProps,
    dir: String,
    variant: String,
    ort_library: Option<String>,
    threads: u32,
    /// Each user's own: a change gets a new user of the same shared model.
    decode_slowdown: f64,
    execution_provider: ExecutionProvider,
    image_size: u32,
    /// Every-frame mode lets ONNX Runtime's threads spin; live mode does not.
    spin: bool,
    vqa_template: Option<String>,
}

impl ModelKey {
    fn of(s: &Settings) -> Result<Self, gst::ErrorMessage> {
        let Some(dir) = s.model_dir.clone().filter(|d| !d.is_empty()) else {
            return Err(gst::error_msg!(
                gst::LibraryError::Settings,
                ("model-dir is not set: point it at a Florence-2 model directory")
            ));
        };
        let execution_provider = s
            .execution_provider
            .clone()
            .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ("{}", e)))?;
        Ok(ModelKey {
            backend: s.backend,
            hailo: s.hailo.clone(),
            dir,
            variant: s.variant.clone(),
            ort_library: s.ort_library.clone(),
            threads: s.threads,
            decode_slowdown: s.decode_slowdown,
            execution_provider,
            image_size: s.image_size.pixels().unwrap_or(0),
            spin: s.mode == Mode::EveryFrame,
            vqa_template: s.vqa_template.clone().filter(|t| !t.is_empty()),
        })
    }
}

/// A loaded model and what it was loaded with.
pub(super) struct Model {
    key: ModelKey,
    florence: Arc<Florence>,
    /// The model directory's name, as results name the model.
    name: String,
    /// Where captions run and why.
    backend_reason: String,
}

impl FlorenceCaption {
    /// The model for the current settings: the loaded one if they did not
    /// change what it depends on, else loaded now (with progress messages).
    pub(super) fn model(&self) -> Result<(Arc<Florence>, String), gst::ErrorMessage> {
        let settings = self.settings.lock().clone();
        let key = ModelKey::of(&settings)?;
        let mut slot = self.model.lock();
        if let Some(m) = slot.as_ref().filter(|m| m.key == key) {
            return Ok((m.florence.clone(), m.name.clone()));
        }
        if slot.is_some() {
            gst::info!(CAT, imp = self, "a model property changed: reloading");
        }
        // The old model's memory goes before the new one is loaded.
        *slot = None;
        let model = self.load(key)?;
        let out = (model.florence.clone(), model.name.clone());
        *slot = Some(model);
        self.latency.reset();
        Ok(out)
    }

    /// The loaded model, if any.
    pub(super) fn loaded(&self) -> Option<Arc<Florence>> {
        self.model.lock().as_ref().map(|m| m.florence.clone())
    }

    /// Where the loaded model runs captions and why; empty before a load.
    pub(super) fn backend_reason(&self) -> String {
        self.model
            .lock()
            .as_ref()
            .map(|m| m.backend_reason.clone())
            .unwrap_or_default()
    }

    /// Drops the model (READY->NULL).
    pub(super) fn unload(&self) {
        *self.model.lock() = None;
    }

    fn load(&self, key: ModelKey) -> Result<Model, gst::ErrorMessage> {
        let mut options = SessionOptions {
            variant: key.variant.clone(),
            ort_library: key.ort_library.clone().map(Into::into),
            // Live: the video threads need the CPU time that spinning ORT threads burn.
            spin: key.spin,
            image_size: (key.image_size > 0).then_some(key.image_size),
            execution_provider: key.execution_provider.clone(),
            decode_slowdown: key.decode_slowdown,
            ..SessionOptions::default()
        };
        if key.threads > 0 {
            let usable = usable_threads(key.threads as usize);
            if usable < key.threads as usize {
                gst::element_imp_warning!(
                    self,
                    gst::LibraryError::Settings,
                    (
                        "threads={} is more than the {usable} CPUs this process may use: using {usable}",
                        key.threads
                    )
                );
            }
            options.intra_threads = usable;
        }
        let (hailo, idle_release) = key.hailo.engine();
        let options = LoadOptions {
            session: options,
            backend: key.backend.into(),
            hailo,
            idle_release,
        };
        let dir = &key.dir;
        // Loading takes seconds with a real model: say so on the bus.
        self.progress(gst::ProgressType::Start, &format!("loading {dir}"));
        let started = Instant::now();
        let loaded = routed(|| Florence::shared(std::path::Path::new(dir), options.clone()));
        // Each message says where loading stands, as gst-launch prints them.
        match &loaded {
            Ok(_) => self.progress(
                gst::ProgressType::Complete,
                &format!("loaded {dir} in {:.1} s", started.elapsed().as_secs_f64()),
            ),
            Err(e) => self.progress(gst::ProgressType::Error, &format!("cannot load {dir}: {e}")),
        }
        let (mut florence, acquired) = loaded.map_err(|e| {
            gst::error_msg!(
                gst::LibraryError::Settings,
                ("cannot load Florence-2 model from {}: {}", dir, e)
            )
        })?;
        gst::info!(
            CAT,
            imp = self,
            "captions on {}: {}",
            match florence.caption_backend() {
                BackendKind::Hailo => "Hailo",
                BackendKind::Onnx => "ONNX Runtime",
            },
            florence.backend_reason()
        );
        if let Some(t) = &key.vqa_template {
            florence
                .set_vqa_template(t)
                .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ("{}", e)))?;
        }
        gst::info!(
            CAT,
            imp = self,
            "loaded model {dir} in {} ms (variant {:?}, threads {}, image size {})",
            started.elapsed().as_millis(),
            key.variant,
            key.threads,
            key.image_size
        );
        self.announce_model(&florence, dir, acquired.loaded);
        let backend_reason = florence.backend_reason().to_owned();
        let name = std::path::Path::new(dir)
            .file_name()
            .map_or_else(|| dir.clone(), |n| n.to_string_lossy().into_owned());
        Ok(Model {
            key,
            florence: Arc::new(florence),
            name,
            backend_reason,
        })
    }

    /// Says which loaded model this instance uses: the `florence-model`
    /// element message (fields `model-dir`, `model-id`, equal for instances
    /// that share one loaded model, `users` and `loaded`, false when it
    /// joined a model already loaded) and a log line.
    fn announce_model(&self, florence: &Florence, dir: &str, loaded: bool) {
        let users = florence.model_users();
        gst::info!(
            CAT,
            imp = self,
            "model {dir} (id {}): {users} user(s), {}",
            florence.model_id(),
            if loaded {
                "loaded now"
            } else {
                "shared with the instances already using it"
            }
        );
        let s = ModelInUse {
            model_dir: dir.to_owned(),
            model_id: florence.model_id(),
            users: u32::try_from(users).unwrap_or(u32::MAX),
            loaded,
        }
        .encode();
        let _ = self
            .obj()
            .post_message(gst::message::Element::builder(s).src(&*self.obj()).build());
    }

    /// A `progress` message (code `load-model`) on the bus.
    fn progress(&self, kind: gst::ProgressType, text: &str) {
        let msg = gst::message::Progress::builder(kind, "load-model", text)
            .src(&*self.obj())
            .build();
        let _ = self.obj().post_message(msg);
    }
}

/// Whether the properties make a request the model can run: at start-up, as
/// set (a region task without a region, a prompt too long, min above max new
/// tokens, an unparsable `region`, ... are refused).
pub(super) fn check_settings(florence: &Florence, s: &Settings) -> Result<(), gst::ErrorMessage> {
    if let Err(e) = &s.region {
        return Err(gst::error_msg!(gst::LibraryError::Settings, ("{}", e)));
    }
    check_request(florence, &s.request_as_set())
        .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ("{}", e)))
}

/// Whether `req`'s task input and options are valid for the model (the region
/// is checked against each frame; here only its presence matters).
pub(super) fn check_request(florence: &Florence, req: &Request) -> Result<(), String> {
    florence
        .prompt_ids(req.task, &req.input, 1 << 20, 1 << 20)
        .map_err(|e| e.to_string())?;
    florence
        .decode_params(&req.options)
        .map_err(|e| e.to_string())?;
    Ok(())
}

impl FlorenceCaption {
    /// The request the properties make now. Properties that change while
    /// PLAYING into something the model cannot run (vqa without a prompt, ...)
    /// are reported once, as a warning message, and the last valid request
    /// goes on meanwhile.
    pub(super) fn properties_request(&self, state: &mut State, settings: &Settings) -> Request {
        let wanted = settings.request();
        if wanted != state.checked {
            state.checked = wanted.clone();
            let region_error = match (&settings.region, wanted.task.input()) {
                (Err(e), crate::engine::task::InputKind::Region) => Some(e.clone()),
                _ => None,
            };
            match region_error.map_or_else(|| check_request(&state.florence, &wanted), Err) {
                Ok(()) => {
                    gst::debug!(CAT, imp = self, "new settings: {wanted:?}");
                    state.request = wanted;
                }
                Err(e) => gst::element_imp_warning!(
                    self,
                    gst::LibraryError::Settings,
                    ("invalid settings ({}): going on with the previous ones", e),
                    [
                        "task {}, previous {}",
                        wanted.task.token(),
                        state.request.task.token()
                    ]
                ),
            }
        }
        state.request.clone()
    }
}
