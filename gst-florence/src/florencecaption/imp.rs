use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;

use super::{
    Backend, ERROR_CANCELLED, ERROR_INFERENCE_FAILED, ERROR_INVALID_REQUEST, ERROR_TIMED_OUT,
    MESSAGE_NAME, META_NAME, Mode, REQUEST_META_NAME, TaskProp,
};
use crate::engine::SessionOptions;
use crate::engine::pipeline::{
    EngineError, Florence, GenerationOptions, Interrupt, Interruption, Output, Request,
};
use crate::engine::preprocess::{Layout, RgbImage};
use crate::engine::task::{InputKind, Task, TaskInput, parse_loc_region, parse_region};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "florencecaption",
        gst::DebugColorFlags::empty(),
        Some("Florence-2 captioning"),
    )
});

#[derive(Debug, Clone)]
struct Settings {
    model_dir: Option<String>,
    variant: String,
    ort_library: Option<String>,
    task: TaskProp,
    prompt: Option<String>,
    /// Parsed `region`, or why it could not be parsed (reported at start).
    region: Result<Option<[f64; 4]>, String>,
    vqa_template: Option<String>,
    max_new_tokens: u32,
    min_new_tokens: u32,
    num_beams: u32,
    temperature: f32,
    seed: u64,
    threads: u32,
    /// 0: the model's own resolution.
    image_size: u32,
    backend: Backend,
    mode: Mode,
    inference_interval_ms: u64,
    skip_similar: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model_dir: None,
            variant: String::new(),
            ort_library: None,
            task: TaskProp::Caption,
            prompt: None,
            region: Ok(None),
            vqa_template: None,
            max_new_tokens: 0,
            min_new_tokens: 0,
            num_beams: 0,
            temperature: 0.0,
            seed: 0,
            threads: 0,
            image_size: 0,
            backend: Backend::Auto,
            mode: Mode::Live,
            inference_interval_ms: 0,
            skip_similar: 0.0,
        }
    }
}

impl Settings {
    /// The properties' request, with the inputs the task does not take dropped:
    /// `prompt` and `region` stay set while the task changes during PLAYING.
    fn request(&self) -> Request {
        without_untaken_inputs(self.request_as_set())
    }

    /// The properties as given (start-up refuses inputs the task does not take).
    fn request_as_set(&self) -> Request {
        let nz = |v: u32| (v > 0).then_some(v as usize);
        Request {
            task: self.task.task(),
            input: TaskInput {
                text: self.prompt.clone().filter(|p| !p.trim().is_empty()),
                region: self.region.clone().ok().flatten(),
            },
            options: GenerationOptions {
                max_new_tokens: nz(self.max_new_tokens),
                min_new_tokens: nz(self.min_new_tokens),
                num_beams: nz(self.num_beams),
                temperature: (self.temperature > 0.0).then_some(self.temperature),
                seed: Some(self.seed),
                ..GenerationOptions::default()
            },
        }
    }
}

/// `req` without the property inputs (`prompt`, `region`) its task does not take.
/// A region task takes its region from `region`, or from `prompt` written in
/// Florence-2's `<loc_>` notation when `region` is not set.
fn without_untaken_inputs(mut req: Request) -> Request {
    let loc_prompt = req.input.region.is_none()
        && req
            .input
            .text
            .as_deref()
            .and_then(parse_loc_region)
            .is_some();
    match req.task.input() {
        InputKind::Text => req.input.region = None,
        InputKind::Region if loc_prompt => {}
        InputKind::Region => req.input.text = None,
        InputKind::None => {
            req.input.text = None;
            req.input.region = None;
        }
    }
    req
}

/// The request an application attached to one buffer (`FlorenceRequestMeta`).
struct BufferRequest {
    id: String,
    /// Layered over the element's properties, or why the meta is invalid.
    request: Result<Request, String>,
    /// `deadline-us`, on `g_get_monotonic_time()`'s clock.
    deadline: Option<Instant>,
}

/// A `g_get_monotonic_time()` value (microseconds) as an `Instant`.
fn monotonic_to_instant(us: i64) -> Instant {
    let now = Instant::now();
    let ahead = us.saturating_sub(glib::monotonic_time());
    now + Duration::from_micros(ahead.max(0) as u64)
}

fn buffer_request(buf: &gst::BufferRef, settings: &Settings) -> Option<BufferRequest> {
    let meta = gst::meta::CustomMeta::from_buffer(buf, REQUEST_META_NAME).ok()?;
    let s = meta.structure();
    let id = s.get::<String>("id").unwrap_or_default();
    let deadline = s.get::<i64>("deadline-us").ok().map(monotonic_to_instant);
    let parse = || -> Result<Request, String> {
        let mut req = settings.request_as_set();
        if let Ok(task) = s.get::<String>("task") {
            req.task = task.parse::<Task>().map_err(|e| e.to_string())?;
        }
        // Inputs from the properties that this buffer's task does not take are dropped.
        let mut req = without_untaken_inputs(req);
        if let Ok(text) = s.get::<String>("text") {
            // The buffer's own input replaces the properties' (a <loc_> text
            // replaces the `region` property for region tasks).
            req.input.region = None;
            req.input.text = Some(text);
        }
        if s.has_field("region") {
            req.input.text = req.input.text.filter(|_| s.has_field("text"));
        }
        if let Ok(region) = s.get::<gst::Array>("region") {
            let v: Vec<f64> = region.iter().filter_map(|v| v.get::<f64>().ok()).collect();
            match v[..] {
                [x1, y1, x2, y2] => req.input.region = Some([x1, y1, x2, y2]),
                _ => return Err("region must be an array of 4 doubles".into()),
            }
        } else if let Ok(region) = s.get::<String>("region") {
            req.input.region = Some(parse_region(&region)?);
        }
        let count = |name: &str| s.get::<u32>(name).ok().map(|v| v as usize);
        if let Some(v) = count("max-new-tokens") {
            req.options.max_new_tokens = Some(v);
        }
        if let Some(v) = count("min-new-tokens") {
            req.options.min_new_tokens = Some(v);
        }
        if let Some(v) = count("num-beams") {
            req.options.num_beams = Some(v);
        }
        if let Ok(t) = s.get::<f64>("temperature") {
            req.options.temperature = (t != 0.0).then_some(t as f32);
        }
        if let Ok(seed) = s.get::<u64>("seed") {
            req.options.seed = Some(seed);
        }
        Ok(req)
    };
    Some(BufferRequest {
        id,
        request: parse(),
        deadline,
    })
}

/// Whether an engine error is the request's fault (bad task input or parameters).
fn error_kind(e: &EngineError) -> &'static str {
    match e {
        EngineError::Prompt(_) | EngineError::Parameter(_) | EngineError::Image(_) => {
            ERROR_INVALID_REQUEST
        }
        EngineError::Interrupted(Interruption::DeadlineExceeded) => ERROR_TIMED_OUT,
        EngineError::Interrupted(Interruption::Cancelled) => ERROR_CANCELLED,
        e => super::hailo::device_error_kind(e).unwrap_or(ERROR_INFERENCE_FAILED),
    }
}

/// One result, as attached to buffers and posted on the bus.
#[derive(Debug, Clone)]
struct Caption {
    task: String,
    text: String,
    result_json: String,
    inference_ms: f64,
    token_count: u64,
    image_size: [u32; 2],
    /// The vision features came from the previous analysis of the same frame.
    vision_cached: bool,
    frame_pts: Option<gst::ClockTime>,
    produced: Instant,
    serial: u64,
    request_id: Option<String>,
}

impl Caption {
    fn from_output(out: &Output, pts: Option<gst::ClockTime>, serial: u64) -> Self {
        Caption {
            task: out.task.clone(),
            text: out.result.text(),
            result_json: serde_json::to_string(&out.result).unwrap_or_default(),
            inference_ms: out.timings.total_ms,
            token_count: out.token_count as u64,
            image_size: out.image_size,
            vision_cached: out.timings.vision_cached,
            frame_pts: pts,
            produced: Instant::now(),
            serial,
            request_id: None,
        }
    }

    fn structure(&self, name: &str, model: &str, fresh: bool) -> gst::Structure {
        let mut s = gst::Structure::builder(name)
            .field("task", &self.task)
            .field("text", &self.text)
            .field("result", &self.result_json)
            .field("inference-time-ms", self.inference_ms)
            .field("model", model)
            .field(
                "frame-pts",
                self.frame_pts.map_or(u64::MAX, gst::ClockTime::nseconds),
            )
            .field("fresh", fresh)
            .field("age-ms", self.produced.elapsed().as_secs_f64() * 1e3)
            .field("token-count", self.token_count)
            .field("image-width", self.image_size[0])
            .field("image-height", self.image_size[1])
            .field("vision-cached", self.vision_cached)
            .build();
        if let Some(id) = &self.request_id {
            s.set("request-id", id);
        }
        s
    }
}

/// What the streaming thread and the live worker share.
struct Shared {
    latest: Mutex<Option<Caption>>,
    busy: AtomicBool,
    /// Bumped on flush and stop: results of older jobs are dropped.
    generation: AtomicU64,
    serial: AtomicU64,
    /// The inference running now (either mode), so flush, stop and the `cancel`
    /// signal can stop it.
    running: Mutex<Option<Running>>,
    /// Going to READY: no new inference starts.
    closed: AtomicBool,
}

struct Running {
    request_id: Option<String>,
    interrupt: Interrupt,
}

impl Shared {
    /// Runs one inference, cancellable through [`Shared::cancel`] meanwhile.
    fn run(
        &self,
        florence: &Florence,
        image: &RgbImage,
        request: &Request,
        request_id: Option<&str>,
        interrupt: Interrupt,
    ) -> Result<Output, EngineError> {
        {
            let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            if self.closed.load(Ordering::SeqCst) {
                interrupt.cancel();
            }
            *running = Some(Running {
                request_id: request_id.map(str::to_owned),
                interrupt: interrupt.clone(),
            });
        }
        let result = florence.run_with(image, request, &interrupt);
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = None;
        result
    }

    /// Cancels the running inference and any that would start after it.
    fn close(&self) {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        self.closed.store(true, Ordering::SeqCst);
        if let Some(r) = running.as_ref() {
            r.interrupt.cancel();
        }
    }

    /// Cancels the running inference if `request_id` is `None` or its id.
    fn cancel(&self, request_id: Option<&str>) -> bool {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        match running.as_ref() {
            Some(r) if request_id.is_none() || r.request_id.as_deref() == request_id => {
                r.interrupt.cancel();
                true
            }
            _ => false,
        }
    }
}

/// A frame handed to the live worker: already RGB, or a private copy of the
/// raw frame that the worker converts (keeping conversion off the streaming thread).
enum Frame {
    Rgb(RgbImage),
    Raw(gst::Buffer, gst_video::VideoInfo),
}

struct Job {
    frame: Frame,
    pts: Option<gst::ClockTime>,
    request: Request,
    generation: u64,
    interval_ms: u64,
    /// When the streaming thread handed the frame over.
    dispatched: Instant,
    /// The stream's frame duration (buffer duration, else the caps' framerate).
    frame_duration: Option<Duration>,
}

struct State {
    florence: Arc<Florence>,
    model_name: String,
    info: Option<gst_video::VideoInfo>,
    shared: Arc<Shared>,
    worker: Option<(SyncSender<Job>, std::thread::JoinHandle<()>)>,
    last_dispatch: Option<Instant>,
    last_thumb: Option<Vec<u8>>,
    last_attached: u64,
    /// YUV -> RGB converter for the current caps, built once per caps.
    converter: Option<Converter>,
}

#[derive(Debug, Default, Clone)]
struct Stats {
    last_caption: String,
    captions_total: u64,
    frames_skipped: u64,
    last_latency_ms: f64,
}

#[derive(Default)]
pub struct FlorenceCaption {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    stats: Arc<Mutex<Stats>>,
    /// The `text_src` request pad, when requested.
    text_pad: Mutex<Option<gst::Pad>>,
    /// stream-start, caps and segment went out on `text_src`.
    text_started: AtomicBool,
}

#[glib::object_subclass]
impl ObjectSubclass for FlorenceCaption {
    const NAME: &'static str = "GstFlorenceCaption";
    type Type = super::FlorenceCaption;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for FlorenceCaption {
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
            ]
        });
        SIGNALS.as_ref()
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let d = Settings::default();
            vec![
                glib::ParamSpecString::builder("model-dir")
                    .nick("Model directory")
                    .blurb("Florence-2 model directory in the onnx-community layout (onnx/*.onnx, config.json, tokenizer.json, ...)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("variant")
                    .nick("Model variant")
                    .blurb("Graph file suffix of a quantized variant: \"\" (fp32), _quantized, _int8, _uint8, ...")
                    .default_value(Some(""))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("ort-library")
                    .nick("ONNX Runtime library")
                    .blurb("Path of libonnxruntime.so; unset: ORT_DYLIB_PATH, the project folder, the system path")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("task", d.task)
                    .nick("Task")
                    .blurb("Florence-2 task; tasks marked (prompt: ...) take the prompt property as input. Can change while PLAYING")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("prompt")
                    .nick("Prompt")
                    .blurb("Text input of the task: the question for vqa, the phrase for grounding, the category for open-vocabulary detection, or a region-to-* task's region as <loc_x1><loc_y1><loc_x2><loc_y2> (bins 0-999)")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("region")
                    .nick("Region")
                    .blurb("Box input of the region-to-* tasks: \"x1,y1,x2,y2\" in pixels of the frame")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("vqa-template")
                    .nick("VQA prompt template")
                    .blurb("Prompt of the vqa task with a {question} placeholder; unset: the model's (florence.json, else \"<VQA>{question}\")")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-new-tokens")
                    .nick("Maximum new tokens")
                    .blurb("Longest generation in tokens; 0 takes the model's default (generation_config.json, else 1024)")
                    .maximum(4096)
                    .default_value(d.max_new_tokens)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("min-new-tokens")
                    .nick("Minimum new tokens")
                    .blurb("End-of-sequence is suppressed before this many tokens")
                    .maximum(4096)
                    .default_value(d.min_new_tokens)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("num-beams")
                    .nick("Beams")
                    .blurb("Beam search width; 1 is greedy; 0 takes the model's default (3 for Florence-2)")
                    .maximum(16)
                    .default_value(d.num_beams)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecFloat::builder("temperature")
                    .nick("Temperature")
                    .blurb("0: deterministic decoding; > 0: sampling at this temperature (reproducible with seed)")
                    .minimum(0.0)
                    .maximum(2.0)
                    .default_value(d.temperature)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt64::builder("seed")
                    .nick("Seed")
                    .blurb("Random seed for sampling")
                    .default_value(d.seed)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("threads")
                    .nick("Threads")
                    .blurb("ONNX Runtime intra-op threads per graph; 0 = physical cores")
                    .maximum(256)
                    .default_value(d.threads)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("image-size")
                    .nick("Image size")
                    .blurb("Input resolution the frames are resized to: 768 or 384 (a quarter of the vision work); 0 = the model's own")
                    .maximum(768)
                    .default_value(d.image_size)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("backend", d.backend)
                    .nick("Backend")
                    .blurb("Inference backend")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("mode", d.mode)
                    .nick("Mode")
                    .blurb("live: buffers never wait, the newest frame is analysed when the worker is free; every-frame: each buffer is analysed before it leaves")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("inference-interval")
                    .nick("Inference interval (ms)")
                    .blurb("Live mode: minimum time between the starts of two analyses, in milliseconds")
                    .default_value(d.inference_interval_ms)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("skip-similar")
                    .nick("Skip similar frames")
                    .blurb("Live mode: skip a frame whose 32x32 grayscale thumbnail differs from the last analysed one by less than this mean absolute difference (0-255 levels; about 2-4 ignores sensor noise); 0 analyses every frame it can")
                    .minimum(0.0)
                    .maximum(255.0)
                    .default_value(d.skip_similar)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("last-caption")
                    .nick("Last caption")
                    .blurb("Text of the latest result")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("captions-total")
                    .nick("Results")
                    .blurb("Number of results produced")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("frames-skipped")
                    .nick("Frames skipped")
                    .blurb("Live mode: frames passed through without being analysed")
                    .read_only()
                    .build(),
                glib::ParamSpecDouble::builder("last-latency-ms")
                    .nick("Last latency (ms)")
                    .blurb("Inference time of the latest result")
                    .read_only()
                    .build(),
                super::hailo::device_property(),
            ]
        });
        PROPS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap_or_else(|e| e.into_inner());
        match pspec.name() {
            "model-dir" => s.model_dir = value.get().unwrap_or(None),
            "variant" => {
                s.variant = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .unwrap_or_default()
            }
            "ort-library" => s.ort_library = value.get().unwrap_or(None),
            "task" => s.task = value.get().unwrap_or(TaskProp::Caption),
            "prompt" => s.prompt = value.get().unwrap_or(None),
            "vqa-template" => s.vqa_template = value.get().unwrap_or(None),
            "region" => {
                let text: Option<String> = value.get().unwrap_or(None);
                s.region = match text.as_deref().map(str::trim) {
                    None | Some("") => Ok(None),
                    Some(t) => parse_region(t).map(Some),
                };
                if let Err(e) = &s.region {
                    gst::warning!(CAT, imp = self, "{e}; the region is ignored");
                }
            }
            "max-new-tokens" => s.max_new_tokens = value.get().unwrap_or(0),
            "min-new-tokens" => s.min_new_tokens = value.get().unwrap_or(0),
            "num-beams" => s.num_beams = value.get().unwrap_or(0),
            "temperature" => s.temperature = value.get().unwrap_or(0.0),
            "seed" => s.seed = value.get().unwrap_or(0),
            "threads" => s.threads = value.get().unwrap_or(0),
            "image-size" => s.image_size = value.get().unwrap_or(0),
            "backend" => s.backend = value.get().unwrap_or(Backend::Auto),
            "mode" => s.mode = value.get().unwrap_or(Mode::Live),
            "inference-interval" => s.inference_interval_ms = value.get().unwrap_or(0),
            "skip-similar" => s.skip_similar = value.get().unwrap_or(0.0),
            other => gst::warning!(CAT, imp = self, "unknown property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == super::hailo::DEVICE_PROPERTY {
            // Before the other locks: the state lock is only held briefly.
            let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            return super::hailo::device_nick(state.as_ref().map(|s| &*s.florence)).to_value();
        }
        let s = self.settings.lock().unwrap_or_else(|e| e.into_inner());
        let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        match pspec.name() {
            "model-dir" => s.model_dir.to_value(),
            "variant" => s.variant.to_value(),
            "ort-library" => s.ort_library.to_value(),
            "task" => s.task.to_value(),
            "prompt" => s.prompt.to_value(),
            "vqa-template" => s.vqa_template.to_value(),
            "region" => s
                .region
                .clone()
                .ok()
                .flatten()
                .map(|r| format!("{},{},{},{}", r[0], r[1], r[2], r[3]))
                .to_value(),
            "max-new-tokens" => s.max_new_tokens.to_value(),
            "min-new-tokens" => s.min_new_tokens.to_value(),
            "num-beams" => s.num_beams.to_value(),
            "temperature" => s.temperature.to_value(),
            "seed" => s.seed.to_value(),
            "threads" => s.threads.to_value(),
            "image-size" => s.image_size.to_value(),
            "backend" => s.backend.to_value(),
            "mode" => s.mode.to_value(),
            "inference-interval" => s.inference_interval_ms.to_value(),
            "skip-similar" => s.skip_similar.to_value(),
            "last-caption" => stats.last_caption.to_value(),
            "captions-total" => stats.captions_total.to_value(),
            "frames-skipped" => stats.frames_skipped.to_value(),
            "last-latency-ms" => stats.last_latency_ms.to_value(),
            _ => glib::Value::from_type(pspec.value_type()),
        }
    }
}

impl GstObjectImpl for FlorenceCaption {}

impl ElementImpl for FlorenceCaption {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Florence-2 captioning",
                "Filter/Analyzer/Video",
                "Runs Florence-2 (captions, VQA, OCR, detection, grounding, segmentation) on video frames and attaches the results as FlorenceCaptionMeta; the text_src request pad gives them as text/x-raw for textoverlay or subtitle encoders. Example: gst-launch-1.0 v4l2src ! videoconvert ! florencecaption name=f model-dir=/var/lib/hailo-florence/models/Florence-2-base-ft ! videoconvert ! textoverlay name=o wait-text=false ! autovideosink f.text_src ! queue ! o.text_sink",
                "florence developers",
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
        let mut slot = self.text_pad.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            gst::warning!(CAT, imp = self, "text_src is already requested");
            return None;
        }
        let pad = gst::Pad::builder_from_template(templ)
            .name("text_src")
            .build();
        self.text_started.store(false, Ordering::SeqCst);
        if let Err(e) = self.obj().add_pad(&pad) {
            gst::warning!(CAT, imp = self, "cannot add text_src: {e}");
            return None;
        }
        *slot = Some(pad.clone());
        Some(pad)
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        if transition == gst::StateChange::PausedToReady {
            // Deactivating the pads waits for the streaming thread: stop its inference,
            // and the one of a buffer that slips in before the pads are flushing.
            if let Some(shared) = self.shared() {
                shared.close();
            }
        }
        self.parent_change_state(transition)
    }

    fn release_pad(&self, pad: &gst::Pad) {
        let mut slot = self.text_pad.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref() == Some(pad) {
            *slot = None;
            drop(slot);
            let _ = pad.set_active(false);
            let _ = self.obj().remove_pad(pad);
        }
    }
}

impl BaseTransformImpl for FlorenceCaption {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let s = self
            .settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(dir) = s.model_dir.clone().filter(|d| !d.is_empty()) else {
            return Err(gst::error_msg!(
                gst::LibraryError::Settings,
                ("model-dir is not set: point it at a Florence-2 model directory")
            ));
        };
        let mut options = SessionOptions {
            variant: s.variant.clone(),
            ort_library: s.ort_library.clone().map(Into::into),
            // Live: the video threads need the CPU time that spinning ORT threads burn.
            spin: s.mode == Mode::EveryFrame,
            image_size: (s.image_size > 0).then_some(s.image_size),
            ..SessionOptions::default()
        };
        if s.threads > 0 {
            options.intra_threads = s.threads as usize;
        }
        // Loading takes seconds with a real model: say so on the bus.
        self.progress(gst::ProgressType::Start, &format!("loading {dir}"));
        let loaded = Florence::load(std::path::Path::new(&dir), options.clone());
        self.progress(
            if loaded.is_ok() {
                gst::ProgressType::Complete
            } else {
                gst::ProgressType::Error
            },
            &format!("loading {dir}"),
        );
        let mut florence = loaded.map_err(|e| {
            gst::error_msg!(
                gst::LibraryError::Settings,
                ("cannot load Florence-2 model from {}: {}", dir, e)
            )
        })?;
        let choice = super::hailo::attach(
            s.backend,
            std::path::Path::new(&dir),
            &options,
            &mut florence,
        )?;
        gst::info!(
            CAT,
            imp = self,
            "captions on {}: {}",
            if choice.hailo {
                "Hailo"
            } else {
                "ONNX Runtime"
            },
            choice.reason
        );
        if let Some(t) = s.vqa_template.as_deref().filter(|t| !t.is_empty()) {
            florence
                .set_vqa_template(t)
                .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ("{}", e)))?;
        }
        // A bad prompt/task combination is a settings error too, not a per-frame failure.
        if let Err(e) = &s.region {
            return Err(gst::error_msg!(gst::LibraryError::Settings, ("{}", e)));
        }
        // The region is checked against each frame; here only its presence matters.
        let req = s.request_as_set();
        florence
            .prompt_ids(req.task, &req.input, 1 << 20, 1 << 20)
            .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ("{}", e)))?;
        florence
            .decode_params(&req.options)
            .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ("{}", e)))?;
        let model_name = std::path::Path::new(&dir)
            .file_name()
            .map_or_else(|| dir.clone(), |n| n.to_string_lossy().into_owned());
        let florence = Arc::new(florence);
        let shared = Arc::new(Shared {
            latest: Mutex::new(None),
            busy: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            serial: AtomicU64::new(0),
            running: Mutex::new(None),
            closed: AtomicBool::new(false),
        });
        let worker = if s.mode == Mode::Live {
            Some(self.spawn_worker(&florence, &shared, &model_name)?)
        } else {
            None
        };
        *self.stats.lock().unwrap_or_else(|e| e.into_inner()) = Stats::default();
        self.text_started.store(false, Ordering::SeqCst);
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = Some(State {
            florence,
            model_name,
            info: None,
            shared,
            worker,
            last_dispatch: None,
            last_thumb: None,
            last_attached: 0,
            converter: None,
        });
        gst::info!(CAT, imp = self, "loaded model {}", dir);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner()).take();
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
        if let Some(state) = self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            // Skip-similar compares with the last analysed frame of these caps.
            state.last_thumb = None;
            state.info = Some(info);
        }
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        self.forward_to_text(&event);
        if let gst::EventView::FlushStart(_) = event.view() {
            // Whatever runs now analyses a frame from before the flush.
            self.cancel_running(None);
        }
        if let gst::EventView::FlushStop(_) = event.view()
            && let Some(state) = self
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_mut()
        {
            state.shared.generation.fetch_add(1, Ordering::SeqCst);
            *state
                .shared
                .latest
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = None;
            state.last_thumb = None;
            state.last_dispatch = None;
        }
        self.parent_sink_event(event)
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let settings = self
            .settings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
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
                let image = frame_to_rgb(buf, &info, &mut state.converter).map_err(|e| {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Format,
                        ("cannot read the frame: {}", e)
                    );
                    gst::FlowError::Error
                })?;
                let florence = state.florence.clone();
                let model = state.model_name.clone();
                let serial = state.shared.serial.fetch_add(1, Ordering::SeqCst) + 1;
                let shared = state.shared.clone();
                drop(guard);
                let (request_id, request, interrupt) = match buffer_request(buf, &settings) {
                    Some(r) => (
                        Some(r.id),
                        r.request,
                        r.deadline
                            .map_or_else(Interrupt::new, Interrupt::with_deadline),
                    ),
                    None => (None, Ok(settings.request()), Interrupt::new()),
                };
                let result = request
                    .map_err(|e| (ERROR_INVALID_REQUEST, e))
                    .and_then(|req| {
                        shared
                            .run(&florence, &image, &req, request_id.as_deref(), interrupt)
                            .map_err(|e| (error_kind(&e), e.to_string()))
                    });
                match result {
                    Ok(out) => {
                        let mut cap = Caption::from_output(&out, pts, serial);
                        cap.request_id = request_id;
                        self.publish(&cap, &model, buf.duration());
                        attach(buf, &cap, &model, true);
                    }
                    Err((kind, message)) => {
                        gst::warning!(CAT, imp = self, "inference failed ({kind}): {message}");
                        match request_id {
                            // The application asked for this buffer: the answer is the error.
                            Some(id) => attach_error(buf, &id, kind, &message),
                            // Stopped by a flush or a state change: not a failure.
                            None if kind == ERROR_CANCELLED => {}
                            None => gst::element_imp_warning!(
                                self,
                                gst::LibraryError::Failed,
                                ("inference failed on a frame"),
                                ["{}", message]
                            ),
                        }
                    }
                }
            }
            Mode::Live => {
                self.maybe_dispatch(state, &settings, buf, &info, pts);
                let latest = state
                    .shared
                    .latest
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                if let Some(cap) = latest {
                    let fresh = cap.serial != state.last_attached;
                    state.last_attached = cap.serial;
                    attach(buf, &cap, &state.model_name, fresh);
                }
            }
        }
        Ok(gst::FlowSuccess::Ok)
    }
}

fn attach(buf: &mut gst::BufferRef, cap: &Caption, model: &str, fresh: bool) {
    match gst::meta::CustomMeta::add(buf, META_NAME) {
        Ok(mut meta) => {
            let s = cap.structure(META_NAME, model, fresh);
            let dst = meta.mut_structure();
            for (name, value) in s.iter() {
                dst.set_value(name, value.clone());
            }
        }
        Err(e) => gst::warning!(CAT, "cannot add {META_NAME}: {e}"),
    }
}

impl FlorenceCaption {
    fn text_pad(&self) -> Option<gst::Pad> {
        self.text_pad
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sends stream-start, caps and the video's segment on `text_src` once.
    fn start_text(&self, pad: &gst::Pad) {
        if self.text_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let obj = self.obj();
        let id = format!("{}/text_src", obj.name());
        pad.push_event(gst::event::StreamStart::new(&id));
        pad.push_event(gst::event::Caps::new(
            &gst::Caps::builder("text/x-raw")
                .field("format", "utf8")
                .build(),
        ));
        let segment = obj
            .static_pad("sink")
            .and_then(|p| p.sticky_event::<gst::event::Segment>(0))
            .filter(|e| e.segment().format() == gst::Format::Time)
            .map(|e| e.copy())
            .unwrap_or_else(|| {
                gst::event::Segment::new(&gst::FormattedSegment::<gst::ClockTime>::new())
            });
        pad.push_event(segment);
    }

    /// A result as a `text/x-raw, format=utf8` buffer at the analysed frame's time.
    fn push_text(&self, text: &str, pts: Option<gst::ClockTime>, duration: Option<gst::ClockTime>) {
        let Some(pad) = self.text_pad() else { return };
        if !pad.is_linked() {
            return;
        }
        self.start_text(&pad);
        let mut buf = gst::Buffer::from_mut_slice(text.as_bytes().to_vec());
        if let Some(b) = buf.get_mut() {
            b.set_pts(pts);
            b.set_duration(duration);
        }
        match pad.push(buf) {
            Ok(_) | Err(gst::FlowError::Flushing) | Err(gst::FlowError::NotLinked) => {}
            Err(e) => gst::debug!(CAT, imp = self, "text_src push: {e:?}"),
        }
    }

    /// Flushes, segments and EOS reach the text branch too.
    fn forward_to_text(&self, event: &gst::Event) {
        let Some(pad) = self.text_pad() else { return };
        match event.view() {
            gst::EventView::FlushStart(_) | gst::EventView::FlushStop(_) => {
                pad.push_event(event.clone());
            }
            gst::EventView::Segment(_) if self.text_started.load(Ordering::SeqCst) => {
                pad.push_event(event.clone());
            }
            gst::EventView::Eos(_) => {
                self.start_text(&pad);
                pad.push_event(event.clone());
            }
            _ => {}
        }
    }
}

fn attach_error(buf: &mut gst::BufferRef, request_id: &str, kind: &str, message: &str) {
    match gst::meta::CustomMeta::add(buf, META_NAME) {
        Ok(mut meta) => {
            let s = meta.mut_structure();
            s.set("request-id", request_id);
            s.set("error", message);
            s.set("error-kind", kind);
        }
        Err(e) => gst::warning!(CAT, "cannot add {META_NAME}: {e}"),
    }
}

impl FlorenceCaption {
    /// A `progress` message (code `load-model`) on the bus.
    fn progress(&self, kind: gst::ProgressType, text: &str) {
        let msg = gst::message::Progress::builder(kind, "load-model", text)
            .src(&*self.obj())
            .build();
        let _ = self.obj().post_message(msg);
    }

    /// What the streaming thread and the worker share, while started.
    fn shared(&self) -> Option<Arc<Shared>> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|s| s.shared.clone())
    }

    /// Cancels the running inference (any, or the one of `request_id`).
    fn cancel_running(&self, request_id: Option<&str>) -> bool {
        self.shared().is_some_and(|s| s.cancel(request_id))
    }

    fn publish(&self, cap: &Caption, model: &str, duration: Option<gst::ClockTime>) {
        self.push_text(&cap.text, cap.frame_pts, duration);
        {
            let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
            stats.last_caption = cap.text.clone();
            stats.captions_total += 1;
            stats.last_latency_ms = cap.inference_ms;
        }
        let msg = gst::message::Element::builder(cap.structure(MESSAGE_NAME, model, true))
            .src(&*self.obj())
            .build();
        let _ = self.obj().post_message(msg);
    }

    fn spawn_worker(
        &self,
        florence: &Arc<Florence>,
        shared: &Arc<Shared>,
        model: &str,
    ) -> Result<(SyncSender<Job>, std::thread::JoinHandle<()>), gst::ErrorMessage> {
        let (tx, rx) = sync_channel::<Job>(1);
        let florence = florence.clone();
        let shared = shared.clone();
        let model = model.to_owned();
        let element = self.obj().downgrade();
        let handle = std::thread::Builder::new()
            .name("florence-worker".into())
            .spawn(move || {
                let mut converter: Option<Converter> = None;
                for job in rx {
                    if shared.generation.load(Ordering::SeqCst) != job.generation {
                        // Queued before a flush or stop: drop it (and its frame) unseen.
                        shared.busy.store(false, Ordering::SeqCst);
                        continue;
                    }
                    let image = match job.frame {
                        Frame::Rgb(image) => Ok(image),
                        Frame::Raw(buffer, info) => frame_to_rgb(&buffer, &info, &mut converter),
                    };
                    let image = match image {
                        Ok(i) => i,
                        Err(e) => {
                            if let Some(element) = element.upgrade() {
                                gst::warning!(CAT, obj = element, "cannot read frame: {e}");
                            }
                            shared.busy.store(false, Ordering::SeqCst);
                            continue;
                        }
                    };
                    let result =
                        shared.run(&florence, &image, &job.request, None, Interrupt::new());
                    let Some(element) = element.upgrade() else {
                        break;
                    };
                    let imp = element.imp();
                    match result {
                        Ok(out) if shared.generation.load(Ordering::SeqCst) == job.generation => {
                            let serial = shared.serial.fetch_add(1, Ordering::SeqCst) + 1;
                            let cap = Caption::from_output(&out, job.pts, serial);
                            *shared.latest.lock().unwrap_or_else(|e| e.into_inner()) =
                                Some(cap.clone());
                            let duration = live_text_duration(
                                job.dispatched.elapsed(),
                                Duration::from_millis(job.interval_ms),
                                job.frame_duration,
                            );
                            imp.publish(&cap, &model, Some(duration));
                        }
                        Ok(_) | Err(EngineError::Interrupted(_)) => {
                            gst::debug!(CAT, imp = imp, "dropping a result from before a flush")
                        }
                        Err(e) => gst::element_imp_warning!(
                            imp,
                            gst::LibraryError::Failed,
                            ("inference failed on a frame"),
                            ["{}", e]
                        ),
                    }
                    shared.busy.store(false, Ordering::SeqCst);
                }
            })
            .map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::Failed,
                    ("cannot start the inference thread: {}", e)
                )
            })?;
        Ok((tx, handle))
    }

    /// Live mode: hand the frame to the worker if it is free and the interval and
    /// similarity settings allow; count it as skipped otherwise.
    fn maybe_dispatch(
        &self,
        state: &mut State,
        settings: &Settings,
        buf: &gst::BufferRef,
        info: &gst_video::VideoInfo,
        pts: Option<gst::ClockTime>,
    ) {
        let skipped = |imp: &Self| {
            imp.stats
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .frames_skipped += 1
        };
        let Some((tx, _)) = state.worker.as_ref() else {
            return;
        };
        if state.shared.busy.load(Ordering::SeqCst) {
            return skipped(self);
        }
        let interval = std::time::Duration::from_millis(settings.inference_interval_ms);
        if state.last_dispatch.is_some_and(|t| t.elapsed() < interval) {
            return skipped(self);
        }
        let frame = if settings.skip_similar > 0.0 {
            // The similarity test needs the picture now.
            let image = match frame_to_rgb(buf, info, &mut state.converter) {
                Ok(i) => i,
                Err(e) => {
                    gst::warning!(CAT, imp = self, "cannot read frame: {e}");
                    return skipped(self);
                }
            };
            let thumb = thumbnail(&image);
            if let Some(prev) = &state.last_thumb
                && mean_abs_diff(prev, &thumb) < settings.skip_similar
            {
                return skipped(self);
            }
            state.last_thumb = Some(thumb);
            Frame::Rgb(image)
        } else {
            // A memcpy here; the conversion runs on the worker.
            match buf.copy_deep() {
                Ok(copy) => Frame::Raw(copy, info.clone()),
                Err(e) => {
                    gst::warning!(CAT, imp = self, "cannot copy frame: {e}");
                    return skipped(self);
                }
            }
        };
        let job = Job {
            frame,
            pts,
            request: settings.request(),
            generation: state.shared.generation.load(Ordering::SeqCst),
            interval_ms: settings.inference_interval_ms,
            dispatched: Instant::now(),
            frame_duration: buf.duration().map(Duration::from).or_else(|| {
                let fps = info.fps();
                (fps.numer() > 0 && fps.denom() > 0).then(|| {
                    Duration::from_secs_f64(f64::from(fps.denom()) / f64::from(fps.numer()))
                })
            }),
        };
        state.shared.busy.store(true, Ordering::SeqCst);
        match tx.try_send(job) {
            Ok(()) => state.last_dispatch = Some(Instant::now()),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                state.shared.busy.store(false, Ordering::SeqCst);
                skipped(self);
            }
        }
    }
}

/// Live mode: how long a new result's text lasts, from the analysed frame's PTS.
///
/// textoverlay shows a text for its duration and holds the next one back until
/// the previous has ended, so the text must last until about when the next
/// result arrives, no less (captions would blink off) and not much more (the
/// next caption would wait). The next result is due when the next frame is
/// taken (after the interval, at a frame boundary) plus its latency, so with
/// `latency` from hand-over to result: max(latency, interval) + latency, plus
/// one frame for the frame boundary and 15 % for latency jitter.
fn live_text_duration(
    latency: Duration,
    interval: Duration,
    frame: Option<Duration>,
) -> gst::ClockTime {
    let cycle = latency.max(interval) + latency;
    let frame = frame.unwrap_or(Duration::from_millis(33));
    let d = cycle + frame + cycle.mul_f64(0.15);
    gst::ClockTime::from_nseconds(d.as_nanos() as u64)
}

/// 32x32 grayscale thumbnail (box average) for the skip-similar comparison.
fn thumbnail(img: &RgbImage) -> Vec<u8> {
    const N: usize = 32;
    let (w, h) = (img.width as usize, img.height as usize);
    let mut out = vec![0u8; N * N];
    for ty in 0..N {
        for tx in 0..N {
            let (x0, x1) = (tx * w / N, ((tx + 1) * w / N).max(tx * w / N + 1).min(w));
            let (y0, y1) = (ty * h / N, ((ty + 1) * h / N).max(ty * h / N + 1).min(h));
            let (mut sum, mut n) = (0u64, 0u64);
            for y in y0..y1 {
                for x in x0..x1 {
                    let p = &img.data[(y * w + x) * 3..(y * w + x) * 3 + 3];
                    sum += (p[0] as u64 * 299 + p[1] as u64 * 587 + p[2] as u64 * 114) / 1000;
                    n += 1;
                }
            }
            out[ty * N + tx] = (sum / n.max(1)) as u8;
        }
    }
    out
}

fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    let total: u64 = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y) as u64).sum();
    total as f64 / a.len().max(1) as f64
}

/// A YUV -> RGB converter and the input caps it was built for.
type Converter = (gst_video::VideoInfo, gst_video::VideoConverter);

/// Reads a mapped video frame as RGB (converting YUV formats with the caps'
/// colorimetry; `converter` is rebuilt whenever `info` is not what it was built for).
fn frame_to_rgb(
    buf: &gst::BufferRef,
    info: &gst_video::VideoInfo,
    converter: &mut Option<Converter>,
) -> Result<RgbImage, String> {
    use gst_video::VideoFormat;
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buf, info)
        .map_err(|_| "cannot map the video frame".to_owned())?;
    let (w, h) = (info.width(), info.height());
    let layout = match info.format() {
        VideoFormat::Rgb => Some(Layout::Rgb),
        VideoFormat::Bgr => Some(Layout::Bgr),
        VideoFormat::Rgba => Some(Layout::Rgba),
        VideoFormat::Bgra => Some(Layout::Bgra),
        VideoFormat::Rgbx => Some(Layout::Rgbx),
        VideoFormat::Bgrx => Some(Layout::Bgrx),
        VideoFormat::Gray8 => Some(Layout::Gray),
        _ => None,
    };
    if let Some(layout) = layout {
        let data = frame.plane_data(0).map_err(|e| e.to_string())?;
        let stride = frame.plane_stride()[0] as usize;
        return RgbImage::from_layout(w, h, layout, data, stride).map_err(|e| e.to_string());
    }
    // YUV: let GStreamer convert with the stream's colorimetry.
    let out_info = gst_video::VideoInfo::builder(VideoFormat::Rgb, w, h)
        .fps(info.fps())
        .par(info.par())
        .build()
        .map_err(|e| e.to_string())?;
    if converter
        .as_ref()
        .is_none_or(|(built_for, _)| built_for != info)
    {
        let c = gst_video::VideoConverter::new(info, &out_info, None).map_err(|e| e.to_string())?;
        *converter = Some((info.clone(), c));
    }
    let (_, converter) = converter.as_ref().ok_or("no converter")?;
    let mut out = gst::Buffer::with_size(out_info.size()).map_err(|e| e.to_string())?;
    {
        let out_ref = out.get_mut().ok_or("cannot write the conversion buffer")?;
        let mut out_frame = gst_video::VideoFrameRef::from_buffer_ref_writable(out_ref, &out_info)
            .map_err(|_| "cannot map the conversion buffer".to_owned())?;
        converter.frame_ref(&frame, &mut out_frame);
        let data = out_frame.plane_data(0).map_err(|e| e.to_string())?;
        let stride = out_frame.plane_stride()[0] as usize;
        RgbImage::from_layout(w, h, Layout::Rgb, data, stride).map_err(|e| e.to_string())
    }
}
