//! The element's GStreamer glue: its instance state and the object, element
//! and base-transform virtual methods. Each concern lives in its own module:
//! `properties`/`settings` (what the properties mean), `model` (loading,
//! settings checks), `inference` (the running inference both modes share),
//! `worker` and `live_job` (live mode, EOS drain), `every_frame`, `request`
//! (per-buffer requests), `result` (metas and messages), `meta_transform`
//! (the meta through scalers), `latency`, `qos`, `text_pad` (`text_src`),
//! `frame` (RGB conversion), `similarity` (skip-similar) and `ort_log` (ONNX
//! Runtime's messages in the debug log). The modes' modules (`worker`,
//! `every_frame`) build on this one; the others know nothing of the element
//! but the `gst::Element` they are given.

use parking_lot::Mutex;
use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use super::Mode;
use super::category::CAT;
use super::frame::Converter;
use super::inference::Shared;
use super::latency::{LatencyEstimate, Output};
use super::live_job::Job;
use super::model::{ModelSlot, PropertiesRequest, check_settings};
use super::properties;
use super::qos::Qos;
use super::request::{add_request, has_request};
use super::result::{Caption, attach_caption, post_result};
use super::settings::{Settings, Stats};
use super::text_pad::TextPad;
use crate::engine::Florence;

pub(super) struct State {
    /// The properties' request (each change checked once against the model).
    pub(super) request: PropertiesRequest,
    pub(super) florence: Arc<Florence>,
    pub(super) model_name: String,
    pub(super) info: Option<gst_video::VideoInfo>,
    pub(super) shared: Arc<Shared>,
    pub(super) worker: Option<(SyncSender<Job>, std::thread::JoinHandle<()>)>,
    pub(super) last_dispatch: Option<Instant>,
    pub(super) last_thumb: Option<Vec<u8>>,
    pub(super) last_attached: u64,
    /// Live mode met a per-buffer request (which it does not answer) and said so.
    pub(super) warned_live_request: bool,
    /// YUV -> RGB converter for the current caps, built once per caps.
    pub(super) converter: Option<Converter>,
}

#[derive(Default)]
pub struct FlorenceCaption {
    pub(super) settings: Mutex<Settings>,
    pub(super) state: Mutex<Option<State>>,
    pub(super) stats: Arc<Mutex<Stats>>,
    pub(super) text_pad: TextPad,
    /// The measured analysis time (the LATENCY query's figure when `latency` is 0).
    pub(super) latency: LatencyEstimate,
    /// The earliest running time worth analysing (every-frame mode).
    pub(super) qos: Qos,
    /// The loaded model (NULL->READY until READY->NULL).
    model: ModelSlot,
}

#[glib::object_subclass]
impl ObjectSubclass for FlorenceCaption {
    const NAME: &'static str = "GstFlorenceCaption";
    type Type = super::FlorenceCaption;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for FlorenceCaption {
    fn constructed(&self) {
        self.parent_constructed();
        // As video filters: late frames are not worth analysing (see qos.rs).
        self.obj().set_qos(true);
    }

    fn signals() -> &'static [glib::subclass::Signal] {
        static SIGNALS: LazyLock<Vec<glib::subclass::Signal>> = LazyLock::new(|| {
            vec![
                // cancel(request-id) -> gboolean: stops the running inference if it is
                // the request with that id (FlorenceRequestMeta `id`), or whatever runs
                // for an empty id. Its buffer leaves with error-kind "cancelled".
                glib::subclass::Signal::builder("cancel")
                    .param_types([String::static_type()])
                    .return_type::<bool>()
                    .action()
                    .class_handler(|args| {
                        let element = args[0].get::<super::FlorenceCaption>().ok()?;
                        let id = args[1].get::<Option<String>>().ok().flatten();
                        let id = id.as_deref().filter(|i| !i.is_empty());
                        Some(element.imp().cancel_running(id).to_value())
                    })
                    .build(),
                // add-request(buffer, structure) -> buffer: the buffer (a shallow
                // copy if it is shared) with the structure's fields as its
                // FlorenceRequestMeta. For bindings whose custom-meta structure is
                // a copy (PyGObject); C can fill the meta's structure directly.
                glib::subclass::Signal::builder("add-request")
                    .param_types([gst::Buffer::static_type(), gst::Structure::static_type()])
                    .return_type::<gst::Buffer>()
                    .action()
                    .class_handler(|args| {
                        let buffer = args[1].get::<gst::Buffer>().ok()?;
                        let request = args[2].get::<gst::Structure>().ok()?;
                        Some(add_request(buffer, &request).to_value())
                    })
                    .build(),
            ]
        });
        SIGNALS.as_ref()
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(properties::specs);
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock();
        properties::set(&mut s, self.obj().upcast_ref(), value, pspec);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == super::hailo::DEVICE_PROPERTY {
            return super::hailo::device_nick(self.model.loaded().as_deref()).to_value();
        }
        if pspec.name() == properties::BACKEND_REASON_PROPERTY {
            return self.model.backend_reason().to_value();
        }
        properties::value(&self.settings.lock(), &self.stats.lock(), pspec)
    }
}

impl GstObjectImpl for FlorenceCaption {}

impl ElementImpl for FlorenceCaption {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Florence-2 captioning",
                "Filter/Analyzer/Video",
                "Runs Florence-2 (captions, VQA, OCR, detection, grounding) on video frames and attaches the results as metadata",
                env!("CARGO_PKG_AUTHORS"),
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            use gst_video::VideoFormat::*;
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list([Rgb, Rgba, Rgbx, Bgr, Bgra, Bgrx, Nv12, I420, Gray8])
                .build();
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps,
                )
                .expect("valid src template"),
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &caps,
                )
                .expect("valid sink template"),
                gst::PadTemplate::new(
                    "text_src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Request,
                    &gst::Caps::builder("text/x-raw")
                        .field("format", "utf8")
                        .build(),
                )
                .expect("valid text_src template"),
            ]
        });
        TEMPLATES.as_ref()
    }

    fn request_new_pad(
        &self,
        templ: &gst::PadTemplate,
        _name: Option<&str>,
        _caps: Option<&gst::Caps>,
    ) -> Option<gst::Pad> {
        let pad = gst::Pad::builder_from_template(templ)
            .name("text_src")
            .query_function(|pad, parent, query| {
                FlorenceCaption::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.text_query(pad, query),
                )
            })
            .build();
        self.text_pad.request(self.obj().upcast_ref(), pad)
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if transition == gst::StateChange::NullToReady {
            // As documented: a missing or broken model, or settings it cannot
            // run, fail the change to READY.
            let checked = self.model().and_then(|(florence, _)| {
                let s = self.settings.lock().clone();
                check_settings(&florence, &s)
            });
            if let Err(e) = checked {
                self.post_error_message(e);
                return Err(gst::StateChangeError);
            }
        }
        if transition == gst::StateChange::PausedToReady {
            // Deactivating the pads waits for the streaming thread: stop its inference,
            // and the one of a buffer that slips in before the pads are flushing.
            if let Some(shared) = self.shared() {
                shared.close();
            }
        }
        let done = self.parent_change_state(transition)?;
        if transition == gst::StateChange::ReadyToNull {
            self.model.unload();
        }
        Ok(done)
    }

    fn release_pad(&self, pad: &gst::Pad) {
        self.text_pad.release(self.obj().upcast_ref(), pad);
    }
}

impl BaseTransformImpl for FlorenceCaption {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        // Loaded at NULL->READY; reloaded here only if a model property changed in READY.
        let (florence, model_name) = self.model()?;
        let s = self.settings.lock().clone();
        // A bad prompt/task combination is a settings error too, not a per-frame failure.
        check_settings(&florence, &s)?;
        let shared = Arc::new(Shared::new());
        let worker = if s.mode == Mode::Live {
            Some(self.spawn_worker(&florence, &shared, &model_name)?)
        } else {
            None
        };
        *self.stats.lock() = Stats::default();
        self.text_pad.reset();
        self.qos.reset();
        *self.state.lock() = Some(State {
            request: PropertiesRequest::new(&s),
            florence,
            model_name,
            info: None,
            shared,
            worker,
            last_dispatch: None,
            last_thumb: None,
            last_attached: 0,
            warned_live_request: false,
            converter: None,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let state = self.state.lock().take();
        if let Some(state) = state {
            // Results of a job still running are dropped; dropping the sender ends the
            // worker once its current inference returns (pads are already inactive, so
            // nothing it does can block on us).
            state.shared.generation.fetch_add(1, Ordering::SeqCst);
            state.shared.close();
            if let Some((tx, handle)) = state.worker {
                drop(tx);
                if handle.join().is_err() {
                    gst::warning!(CAT, imp = self, "the inference thread panicked");
                }
            }
        }
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "cannot parse caps {}", incaps))?;
        if let Some(state) = self.state.lock().as_mut() {
            // Skip-similar compares with the last analysed frame of these caps.
            state.last_thumb = None;
            state.info = Some(info);
        }
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        if let gst::EventView::Eos(_) = event.view() {
            // The result in flight goes out (bus, text_src) before EOS does.
            let timeout = self.settings.lock().drain_timeout_ms;
            self.drain(Duration::from_millis(timeout.into()));
        }
        self.text_pad.forward(self.obj().upcast_ref(), &event);
        if let gst::EventView::FlushStart(_) = event.view() {
            // Whatever runs now analyses a frame from before the flush.
            self.cancel_running(None);
        }
        if let gst::EventView::FlushStop(_) = event.view() {
            self.qos.reset();
        }
        if let gst::EventView::FlushStop(_) = event.view()
            && let Some(state) = self.state.lock().as_mut()
        {
            state.shared.generation.fetch_add(1, Ordering::SeqCst);
            *state.shared.latest.lock() = None;
            state.last_thumb = None;
            state.last_dispatch = None;
        }
        self.parent_sink_event(event)
    }

    fn src_event(&self, event: gst::Event) -> bool {
        if let gst::EventView::Qos(_) = event.view() {
            return self.qos.handle(self.obj().upcast_ref(), event);
        }
        self.parent_src_event(event)
    }

    fn query(&self, direction: gst::PadDirection, query: &mut gst::QueryRef) -> bool {
        if direction == gst::PadDirection::Src
            && let gst::QueryViewMut::Latency(q) = query.view_mut()
        {
            return self.latency_query(q, Output::Video);
        }
        BaseTransformImplExt::parent_query(self, direction, query)
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let settings = self.settings.lock().clone();
        let mut guard = self.state.lock();
        let Some(state) = guard.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        let Some(info) = state.info.clone() else {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ["no caps before the first buffer"]
            );
            return Err(gst::FlowError::NotNegotiated);
        };
        let pts = buf.pts();
        match settings.mode {
            Mode::EveryFrame => {
                if !has_request(buf) && self.qos.too_late(self.obj().upcast_ref(), buf, &self.stats)
                {
                    return Ok(gst::FlowSuccess::Ok);
                }
                let job = self.prepare_analysis(state, &settings, &info, buf)?;
                drop(guard);
                self.analyse(buf, job, &settings);
            }
            Mode::Live => {
                if !state.warned_live_request && has_request(buf) {
                    // Live mode analyses the newest frame with the properties'
                    // request; a buffer's own would be dropped without a word.
                    state.warned_live_request = true;
                    gst::element_imp_warning!(
                        self,
                        gst::StreamError::Format,
                        ("a buffer carries a FlorenceRequestMeta, which live mode ignores (said once): set mode=every-frame to answer per-buffer requests")
                    );
                }
                self.maybe_dispatch(state, &settings, buf, &info, pts);
                let latest = state.shared.latest.lock().clone();
                if let Some(cap) = latest {
                    let fresh = cap.serial != state.last_attached;
                    state.last_attached = cap.serial;
                    attach_caption(
                        buf,
                        &self.obj().name(),
                        &cap,
                        &state.model_name,
                        fresh,
                        [info.width(), info.height()],
                    );
                }
            }
        }
        Ok(gst::FlowSuccess::Ok)
    }
}

impl FlorenceCaption {
    /// Queries on `text_src`: its latency is the analysis's, in both modes.
    fn text_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Latency(q) = query.view_mut() {
            return self.latency_query(q, Output::Text);
        }
        gst::Pad::query_default(pad, Some(&*self.obj()), query)
    }

    /// Answers a LATENCY query on `output` (see `latency.rs`).
    fn latency_query(&self, q: &mut gst::query::Latency, output: Output) -> bool {
        let settings = {
            let s = self.settings.lock();
            (s.mode, s.latency_ms)
        };
        self.latency
            .query(self.obj().upcast_ref(), q, output, settings)
    }

    /// Records one analysis's time, from hand-over to result.
    pub(super) fn observe_latency(&self, took: Duration) {
        let configured = self.settings.lock().latency_ms;
        self.latency
            .observe(self.obj().upcast_ref(), took, configured);
    }

    /// A new result: on `text_src`, in the read-only properties and on the bus.
    pub(super) fn publish(&self, cap: &Caption, model: &str, duration: Option<gst::ClockTime>) {
        let element = self.obj();
        self.text_pad
            .push(element.upcast_ref(), &cap.text, cap.frame_pts, duration);
        {
            let mut stats = self.stats.lock();
            stats.last_caption = cap.text.clone();
            stats.captions_total += 1;
            stats.last_latency_ms = cap.inference_ms;
        }
        post_result(element.upcast_ref(), cap, model);
    }

    /// The model for the current settings: the loaded one, or loaded now if
    /// they changed what it depends on (whose latency is measured anew).
    fn model(&self) -> Result<(Arc<Florence>, String), gst::ErrorMessage> {
        let settings = self.settings.lock().clone();
        let in_use = self.model.get(self.obj().upcast_ref(), &settings)?;
        if in_use.loaded_now {
            self.latency.reset();
        }
        Ok((in_use.florence, in_use.name))
    }

    /// What the streaming thread and the worker share, while started.
    pub(super) fn shared(&self) -> Option<Arc<Shared>> {
        self.state.lock().as_ref().map(|s| s.shared.clone())
    }

    /// Cancels the running inference (any, or the one of `request_id`).
    pub(super) fn cancel_running(&self, request_id: Option<&str>) -> bool {
        self.shared().is_some_and(|s| s.cancel(request_id))
    }
}
