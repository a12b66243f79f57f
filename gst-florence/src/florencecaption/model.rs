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

use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Instant;

use gst::prelude::*;

use super::category::CAT;
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
struct Model {
    key: ModelKey,
    florence: Arc<Florence>,
    /// The model directory's name, as results name the model.
    name: String,
    /// Where captions run and why.
    backend_reason: String,
}

/// The element's model (loaded NULL->READY until READY->NULL).
#[derive(Default)]
pub(super) struct ModelSlot(Mutex<Option<Model>>);

/// A model for the element's settings: the model, its name, and whether it
/// was loaded now (a new model: what was measured on the old one is stale).
pub(super) struct InUse {
    pub(super) florence: Arc<Florence>,
    pub(super) name: String,
    pub(super) loaded_now: bool,
}

impl ModelSlot {
    /// The model for `settings`: the loaded one if they did not change what
    /// it depends on, else loaded now (with `element`'s progress messages).
    pub(super) fn get(
        &self,
        element: &gst::Element,
        settings: &Settings,
    ) -> Result<InUse, gst::ErrorMessage> {
        let key = ModelKey::of(settings)?;
        let mut slot = self.0.lock();
        if let Some(m) = slot.as_ref().filter(|m| m.key == key) {
            return Ok(InUse {
                florence: m.florence.clone(),
                name: m.name.clone(),
                loaded_now: false,
            });
        }
        if slot.is_some() {
            gst::info!(CAT, obj = element, "a model property changed: reloading");
        }
        // The old model's memory goes before the new one is loaded.
        *slot = None;
        let model = load(element, key)?;
        let in_use = InUse {
            florence: model.florence.clone(),
            name: model.name.clone(),
            loaded_now: true,
        };
        *slot = Some(model);
        Ok(in_use)
    }

    /// The loaded model, if any.
    pub(super) fn loaded(&self) -> Option<Arc<Florence>> {
        self.0.lock().as_ref().map(|m| m.florence.clone())
    }

    /// Where the loaded model runs captions and why; empty before a load.
    pub(super) fn backend_reason(&self) -> String {
        self.0
            .lock()
            .as_ref()
            .map(|m| m.backend_reason.clone())
            .unwrap_or_default()
    }

    /// Drops the model (READY->NULL).
    pub(super) fn unload(&self) {
        *self.0.lock() = None;
    }
}

fn load(element: &gst::Element, key: ModelKey) -> Result<Model, gst::ErrorMessage> {
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
            gst::element_warning!(
                element,
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
    progress(element, gst::ProgressType::Start, &format!("loading {dir}"));
    let started = Instant::now();
    let loaded = routed(|| Florence::shared(std::path::Path::new(dir), options.clone()));
    // Each message says where loading stands, as gst-launch prints them.
    match &loaded {
        Ok(_) => progress(
            element,
            gst::ProgressType::Complete,
            &format!("loaded {dir} in {:.1} s", started.elapsed().as_secs_f64()),
        ),
        Err(e) => progress(
            element,
            gst::ProgressType::Error,
            &format!("cannot load {dir}: {e}"),
        ),
    }
    let (mut florence, acquired) = loaded.map_err(|e| {
        gst::error_msg!(
            gst::LibraryError::Settings,
            ("cannot load Florence-2 model from {}: {}", dir, e)
        )
    })?;
    gst::info!(
        CAT,
        obj = element,
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
        obj = element,
        "loaded model {dir} in {} ms (variant {:?}, threads {}, image size {})",
        started.elapsed().as_millis(),
        key.variant,
        key.threads,
        key.image_size
    );
    announce_model(element, &florence, dir, acquired.loaded);
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

/// Says which loaded model `element` uses: the `florence-model` element
/// message (fields `model-dir`, `model-id`, equal for instances that share
/// one loaded model, `users` and `loaded`, false when it joined a model
/// already loaded) and a log line.
fn announce_model(element: &gst::Element, florence: &Florence, dir: &str, loaded: bool) {
    let users = florence.model_users();
    gst::info!(
        CAT,
        obj = element,
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
    let _ = element.post_message(gst::message::Element::builder(s).src(element).build());
}

/// A `progress` message (code `load-model`) on the bus.
fn progress(element: &gst::Element, kind: gst::ProgressType, text: &str) {
    let msg = gst::message::Progress::builder(kind, "load-model", text)
        .src(element)
        .build();
    let _ = element.post_message(msg);
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
fn check_request(florence: &Florence, req: &Request) -> Result<(), String> {
    florence
        .prompt_ids(req.task, &req.input, 1 << 20, 1 << 20)
        .map_err(|e| e.to_string())?;
    florence
        .decode_params(&req.options)
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// The request the properties make, checked against the model once per change.
pub(super) struct PropertiesRequest {
    /// As last found valid (used while the properties' is not).
    valid: Request,
    /// As last checked.
    checked: Request,
}

impl PropertiesRequest {
    /// `settings`' request, already checked when the element started.
    pub(super) fn new(settings: &Settings) -> Self {
        PropertiesRequest {
            valid: settings.request(),
            checked: settings.request(),
        }
    }

    /// The request the properties make now. Properties that change while
    /// PLAYING into something `florence` cannot run (vqa without a prompt,
    /// ...) are reported once, as `element`'s warning message, and the last
    /// valid request goes on meanwhile.
    pub(super) fn current(
        &mut self,
        element: &gst::Element,
        florence: &Florence,
        settings: &Settings,
    ) -> Request {
        let wanted = settings.request();
        if wanted != self.checked {
            self.checked = wanted.clone();
            let region_error = match (&settings.region, wanted.task.input()) {
                (Err(e), crate::engine::task::InputKind::Region) => Some(e.clone()),
                _ => None,
            };
            match region_error.map_or_else(|| check_request(florence, &wanted), Err) {
                Ok(()) => {
                    gst::debug!(CAT, obj = element, "new settings: {wanted:?}");
                    self.valid = wanted;
                }
                Err(e) => gst::element_warning!(
                    element,
                    gst::LibraryError::Settings,
                    ("invalid settings ({}): going on with the previous ones", e),
                    [
                        "task {}, previous {}",
                        wanted.task.token(),
                        self.valid.task.token()
                    ]
                ),
            }
        }
        self.valid.clone()
    }
}
