//! The inference side: `appsrc ! florencecaption mode=every-frame ! appsink`
//! pipelines, each owned by one thread that takes jobs from a bounded FIFO.
//!
//! Every job becomes one buffer carrying a `FlorenceRequestMeta` with its id and
//! parameters; the answer is the buffer that comes out with the same
//! `request-id`, so a late answer to a timed-out job is never handed to the next.
//! Both are written and read by gst-florence's `protocol` module (the one
//! place naming their fields): a [`BufferRequest`] goes in, an
//! [`ElementAnswer`] comes out. The parameters were validated at the HTTP
//! edge (`http::request`); the element checks them again only because it
//! checks every application's request.

use parking_lot::{Condvar, Mutex};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gstflorence::engine::layout::Layout;
use gstflorence::engine::postprocess::TaskResult;
use gstflorence::engine::preprocess::RgbImage;
use gstflorence::engine::task::Task;
use gstflorence::engine::{BackendKind, ExecutionProvider};
use gstflorence::florencecaption::ImageSize;
use gstflorence::protocol::{
    BufferRequest, ElementAnswer, ErrorKind, META_NAME, REQUEST_META_NAME, RequestParams,
    ResultField,
};
use tokio::sync::oneshot;

use crate::config::{BackendChoice, Config};

/// A successful answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub task: String,
    pub text: String,
    /// The structured result (post_process_generation's inner value).
    pub result: TaskResult,
    pub token_count: u64,
    pub inference_ms: f64,
    pub queue_ms: f64,
    /// Of `inference_ms`, queued for turns on the model shared with the
    /// other pipelines (`max_concurrent_requests` above 1).
    pub model_wait_ms: f64,
    pub image_size: [u32; 2],
    /// The image's vision features were reused from the previous task on it.
    pub vision_cached: bool,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum JobError {
    /// The element answered the request with an error of this kind, or the
    /// pipeline running it met one (its wait ran out: `TimedOut`; the
    /// pipeline failed meanwhile: `InferenceFailed`). `http::error` gives
    /// each kind its answer.
    #[error("{kind}: {message}")]
    Failed { kind: ErrorKind, message: String },
    #[error("the pipeline is not running: {0}")]
    Unavailable(String),
    /// The shutdown deadline passed before this job finished (or started).
    #[error("the service is shutting down")]
    ShuttingDown,
}

impl JobError {
    fn failed(kind: ErrorKind, message: impl Into<String>) -> Self {
        JobError::Failed {
            kind,
            message: message.into(),
        }
    }

    /// The job waited or ran past its timeout.
    fn timed_out() -> Self {
        Self::failed(
            ErrorKind::TimedOut,
            "request waited or ran past the timeout",
        )
    }

    /// The kind of a job the element (or its pipeline) answered with an error.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            JobError::Failed { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

pub type Reply = Result<Answer, JobError>;

pub struct Job {
    pub id: String,
    pub image: RgbImage,
    /// What is asked, validated at the HTTP edge.
    pub params: RequestParams,
    pub enqueued: Instant,
    pub deadline: Instant,
    pub reply: oneshot::Sender<Reply>,
    /// Jobs on the same image that run right after this one on the same pipeline
    /// (their `image` is left empty): the engine reuses the image's vision features.
    pub then: Vec<Job>,
}

/// Health of the inference side, as /health reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Health {
    Loading,
    Ready,
    Failed(String),
    Stopping,
}

/// Shared between the HTTP side and the workers.
pub struct Workers {
    tx: Mutex<Option<SyncSender<Job>>>,
    /// Kept so that an abort can answer the jobs still waiting in the queue.
    rx: Arc<Mutex<Receiver<Job>>>,
    /// Jobs admitted and not yet answered (queued + running).
    pub in_flight: AtomicUsize,
    pub running: AtomicUsize,
    capacity: usize,
    pub health: Mutex<Health>,
    /// Last time each worker loop went round (ms since `epoch`); a stuck inference stops it.
    heartbeats: Vec<AtomicU64>,
    epoch: Instant,
    pub model_variant: String,
    /// Captions run on a Hailo device (backend=hailo, or auto's choice).
    hailo: AtomicBool,
    /// The Hailo device as the last caption left it (the element's `hailo-device`).
    hailo_device: Mutex<String>,
    /// Where captions run and why (the element's `backend-reason`).
    backend_reason: Mutex<String>,
    /// ONNX Runtime's name of the execution provider the model loaded with
    /// (the element's `execution-provider`); empty until loaded.
    execution_provider: Mutex<String>,
    pub vqa_supported: bool,
    stop: AtomicBool,
    /// Shutdown deadline passed: queued jobs are refused, the running ones cancelled.
    abort: AtomicBool,
    /// A reload replaced these pipelines: they finish what they hold, take nothing new.
    retired: AtomicBool,
    /// Worker loops still running; shutdown waits on the condition variable.
    live: (Mutex<usize>, Condvar),
}

pub enum SubmitError {
    Overloaded,
    NotReady,
    /// These pipelines were replaced by a reload meanwhile: submit to the new ones.
    Retired(Box<Job>),
}

/// Answers a job, and the jobs chained to it, with `e`.
fn refuse(job: Job, e: &JobError) {
    for next in job.then {
        let _ = next.reply.send(Err(e.clone()));
    }
    let _ = job.reply.send(Err(e.clone()));
}

impl Workers {
    /// Starts `max_concurrent_requests` pipelines; returns once all have loaded
    /// (or the first failed, with its message).
    pub fn start(config: &Config) -> (Arc<Workers>, Result<(), String>) {
        let n = config.max_concurrent_requests;
        let capacity = n + config.queue_depth;
        let (tx, rx) = sync_channel::<Job>(capacity);
        let model_variant = config
            .model_dir
            .as_ref()
            .and_then(|d| d.file_name())
            .map_or_else(|| "florence-2".into(), |n| n.to_string_lossy().into_owned());
        // hailo-florence's layout has no ONNX text graphs: VQA with a free
        // question cannot run on it (no public HEF takes one).
        let hailo_layout = config
            .model_dir
            .as_ref()
            .is_some_and(|d| Layout::of(d) == Layout::HailoFlorence);
        let vqa_supported = !hailo_layout
            && (config.backend != BackendChoice::Hailo
                || config
                    .model_dir
                    .as_ref()
                    .is_some_and(|d| d.join("vqa_embedding.npy").exists()));
        let rx = Arc::new(Mutex::new(rx));
        let workers = Arc::new(Workers {
            tx: Mutex::new(Some(tx)),
            rx: rx.clone(),
            in_flight: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            capacity,
            health: Mutex::new(Health::Loading),
            heartbeats: (0..n).map(|_| AtomicU64::new(0)).collect(),
            epoch: Instant::now(),
            model_variant,
            hailo: AtomicBool::new(config.backend == BackendChoice::Hailo),
            hailo_device: Mutex::new("not-used".into()),
            backend_reason: Mutex::new(String::new()),
            execution_provider: Mutex::new(String::new()),
            vqa_supported,
            stop: AtomicBool::new(false),
            abort: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            live: (Mutex::new(0), Condvar::new()),
        });
        let mut pipelines = Vec::new();
        for i in 0..n {
            match InferencePipeline::build(config).and_then(|mut p| {
                if config.warmup {
                    p.warm_up(config)?;
                }
                Ok(p)
            }) {
                Ok(p) => {
                    workers.note_hailo_device(&p);
                    if i == 0 {
                        *workers.backend_reason.lock() = p
                            .caption
                            .property::<Option<String>>("backend-reason")
                            .unwrap_or_default();
                        *workers.execution_provider.lock() = p
                            .caption
                            .property::<Option<String>>("execution-provider")
                            .and_then(|n| n.parse::<ExecutionProvider>().ok())
                            .map(|p| p.name().to_owned())
                            .unwrap_or_default();
                        // The element logs why (GStreamer category florencecaption).
                        tracing::info!(
                            backend = workers.backend(),
                            hailo_device = %workers.hailo_device(),
                            reason = %workers.backend_reason(),
                            execution_provider = %workers.execution_provider(),
                            "captions run on {}",
                            if workers.kind().has_device() { "the Hailo device" } else { "ONNX Runtime" }
                        );
                    }
                    pipelines.push(p)
                }
                Err(e) => {
                    *workers.health.lock() = Health::Failed(e.clone());
                    return (workers, Err(e));
                }
            }
            tracing::info!(worker = i, "pipeline {} of {} is PLAYING", i + 1, n);
        }
        for (i, p) in pipelines.into_iter().enumerate() {
            let w = workers.clone();
            let rx = rx.clone();
            let timeout = config.request_timeout_s;
            *workers.live.0.lock() += 1;
            let handle = std::thread::Builder::new()
                .name(format!("florenced-worker-{i}"))
                .spawn(move || {
                    w.worker_loop(i, p, &rx, timeout);
                    w.loop_ended();
                });
            if let Err(e) = handle {
                workers.loop_ended();
                workers.shutdown(Duration::ZERO);
                return (workers, Err(format!("cannot start a worker thread: {e}")));
            }
        }
        *workers.health.lock() = Health::Ready;
        (workers, Ok(()))
    }

    /// The backend captions run on.
    pub fn kind(&self) -> BackendKind {
        if self.hailo.load(Ordering::SeqCst) {
            BackendKind::Hailo
        } else {
            BackendKind::Onnx
        }
    }

    /// Its name as reports give it: `hailo` or `onnx-cpu`.
    pub fn backend(&self) -> &'static str {
        self.kind().name()
    }

    /// Where captions run and why (backend=auto's choice and its cause).
    pub fn backend_reason(&self) -> String {
        self.backend_reason.lock().clone()
    }

    /// ONNX Runtime's name of the execution provider the model runs on
    /// (`CPUExecutionProvider`, ...); empty until a model is loaded.
    pub fn execution_provider(&self) -> String {
        self.execution_provider.lock().clone()
    }

    /// The Hailo device's state: `released`, `connected`, `busy`,
    /// `disconnected`, or `not-used`.
    pub fn hailo_device(&self) -> String {
        self.hailo_device.lock().clone()
    }

    /// Reads which backend the element chose and the device's state.
    fn note_hailo_device(&self, p: &InferencePipeline) {
        let state = p
            .caption
            .property::<Option<String>>("hailo-device")
            .unwrap_or_else(|| "not-used".into());
        self.hailo.store(state != "not-used", Ordering::SeqCst);
        *self.hailo_device.lock() = state;
    }

    pub fn health(&self) -> Health {
        self.health.lock().clone()
    }

    pub fn set_health(&self, h: Health) {
        *self.health.lock() = h;
    }

    /// Admits a job or refuses it at once when the queue is full.
    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        if self.health() != Health::Ready {
            return Err(SubmitError::NotReady);
        }
        // Count first so that concurrent submitters cannot overshoot the bound.
        if self.in_flight.fetch_add(1, Ordering::SeqCst) >= self.capacity {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            return Err(SubmitError::Overloaded);
        }
        let guard = self.tx.lock();
        let Some(tx) = guard.as_ref() else {
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if self.retired.load(Ordering::SeqCst) && !self.abort.load(Ordering::SeqCst) {
                return Err(SubmitError::Retired(Box::new(job)));
            }
            return Err(SubmitError::NotReady);
        };
        match tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                Err(SubmitError::Overloaded)
            }
            Err(TrySendError::Disconnected(_)) => {
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                Err(SubmitError::NotReady)
            }
        }
    }

    /// Jobs waiting for a worker.
    pub fn queued(&self) -> usize {
        self.in_flight
            .load(Ordering::SeqCst)
            .saturating_sub(self.running.load(Ordering::SeqCst))
    }

    /// True while every worker loop went round within `max_age` (none is stuck).
    pub fn alive_within(&self, max_age: Duration) -> bool {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.heartbeats
            .iter()
            .all(|h| now.saturating_sub(h.load(Ordering::SeqCst)) <= max_age.as_millis() as u64)
    }

    /// Stops taking jobs; workers finish what is queued, then their pipelines go
    /// to NULL. Waits up to `wait` for that; true when every worker loop ended.
    pub fn shutdown(&self, wait: Duration) -> bool {
        self.tx.lock().take();
        let (count, ended) = &self.live;
        let mut guard = count.lock();
        ended.wait_while_for(&mut guard, |n| *n > 0, wait);
        let stopped = *guard == 0;
        drop(guard);
        self.stop.store(true, Ordering::SeqCst);
        stopped
    }

    /// After a reload: takes no new job (a submit gets [`SubmitError::Retired`]);
    /// the queued and running ones finish here, then the pipelines stop.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
        self.tx.lock().take();
    }

    /// True once every worker loop has ended (their pipelines are in NULL).
    pub fn stopped(&self) -> bool {
        *self.live.0.lock() == 0
    }

    /// The shutdown deadline passed: takes no new job, answers every queued one
    /// with [`JobError::ShuttingDown`] and has the running ones cancelled (the
    /// worker loops see the flag within one poll). Returns (refused, running).
    pub fn abort(&self) -> (usize, usize) {
        self.abort.store(true, Ordering::SeqCst);
        self.tx.lock().take();
        let mut refused = 0;
        let rx = self.rx.lock();
        while let Ok(job) = rx.try_recv() {
            refuse(job, &JobError::ShuttingDown);
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            refused += 1;
        }
        (refused, self.running.load(Ordering::SeqCst))
    }

    fn loop_ended(&self) {
        let (count, ended) = &self.live;
        let mut n = count.lock();
        *n = n.saturating_sub(1);
        if *n == 0 {
            ended.notify_all();
            if self.retired.load(Ordering::SeqCst) {
                tracing::info!(
                    "the pipelines replaced by the reload finished their requests and stopped"
                );
            }
        }
    }

    fn beat(&self, i: usize) {
        if let Some(h) = self.heartbeats.get(i) {
            h.store(self.epoch.elapsed().as_millis() as u64, Ordering::SeqCst);
        }
    }

    fn worker_loop(
        &self,
        i: usize,
        mut pipeline: InferencePipeline,
        rx: &Mutex<Receiver<Job>>,
        timeout_s: f64,
    ) {
        loop {
            self.beat(i);
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let job = {
                let rx = rx.lock();
                rx.recv_timeout(Duration::from_millis(250))
            };
            let job = match job {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if self.abort.load(Ordering::SeqCst) {
                refuse(job, &JobError::ShuttingDown);
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                continue;
            }
            self.running.fetch_add(1, Ordering::SeqCst);
            self.run_job(&mut pipeline, job, timeout_s);
            self.running.fetch_sub(1, Ordering::SeqCst);
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
        pipeline.stop();
    }

    fn run_job(&self, pipeline: &mut InferencePipeline, mut job: Job, timeout_s: f64) {
        let followers = std::mem::take(&mut job.then);
        let image = (!followers.is_empty()).then(|| job.image.clone());
        self.run_one(pipeline, job, timeout_s);
        if let Some(image) = image {
            for mut next in followers {
                if self.abort.load(Ordering::SeqCst) {
                    refuse(next, &JobError::ShuttingDown);
                    continue;
                }
                next.image = image.clone();
                self.run_one(pipeline, next, timeout_s);
            }
        }
    }

    fn run_one(&self, pipeline: &mut InferencePipeline, mut job: Job, timeout_s: f64) {
        if job.reply.is_closed() {
            tracing::info!(request_id = %job.id, "client went away; dropping queued work");
            return;
        }
        if Instant::now() >= job.deadline {
            let _ = job.reply.send(Err(JobError::timed_out()));
            return;
        }
        let queue_ms = job.enqueued.elapsed().as_secs_f64() * 1e3;
        let mut result = pipeline.infer(&mut job, timeout_s, &self.abort);
        if matches!(&result, Err(e) if e.kind() == Some(ErrorKind::Cancelled))
            && self.abort.load(Ordering::SeqCst)
        {
            result = Err(JobError::ShuttingDown);
        }
        if self.hailo.load(Ordering::SeqCst) {
            self.note_hailo_device(pipeline);
        }
        if let Err(
            JobError::Unavailable(reason)
            | JobError::Failed {
                kind: ErrorKind::InferenceFailed,
                message: reason,
            },
        ) = &result
            && pipeline.broken
        {
            tracing::error!(error = %reason, "pipeline failed; restarting it");
            match pipeline.restart() {
                Ok(()) => tracing::info!("pipeline restarted"),
                Err(e) => {
                    tracing::error!(error = %e, "pipeline restart failed");
                    self.set_health(Health::Failed(e));
                }
            }
        }
        let _ = job.reply.send(result.map(|mut a| {
            a.queue_ms = queue_ms;
            a
        }));
    }
}

/// One `appsrc ! florencecaption ! appsink` pipeline.
struct InferencePipeline {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    caption: gst::Element,
    sink: gst_app::AppSink,
    config: Config,
    frame: u64,
    /// An error on the bus: the pipeline must be rebuilt before the next job.
    broken: bool,
}

fn bus_error(pipeline: &gst::Pipeline) -> Option<String> {
    let bus = pipeline.bus()?;
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error, gst::MessageType::Warning]) {
        match msg.view() {
            gst::MessageView::Error(e) => {
                return Some(match e.debug() {
                    Some(d) => format!("{} ({d})", e.error()),
                    None => e.error().to_string(),
                });
            }
            gst::MessageView::Warning(w) => {
                tracing::warn!(warning = %w.error(), "pipeline warning");
            }
            _ => {}
        }
    }
    None
}

/// Logs which loaded model the pipeline's element uses (its `florence-model`
/// message): the workers of one configuration share one model in the
/// process, so the first logs `loaded: true` and the others join it.
fn log_model(pipeline: &gst::Pipeline, model_dir: &std::path::Path) {
    let Some(bus) = pipeline.bus() else {
        return;
    };
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Element]) {
        let Some(m) = msg
            .structure()
            .and_then(gstflorence::protocol::ModelInUse::decode)
        else {
            continue;
        };
        tracing::info!(
            model_id = m.model_id,
            model_users = m.users,
            loaded = m.loaded,
            "model {}: {} user(s) in this process",
            model_dir.display(),
            m.users
        );
    }
}

impl InferencePipeline {
    fn build(config: &Config) -> Result<InferencePipeline, String> {
        let Some(model_dir) = config.model_dir.as_ref() else {
            return Err("no model directory configured (model_dir / --model-dir)".into());
        };
        let make = |factory: &str| {
            gst::ElementFactory::make(factory)
                .build()
                .map_err(|e| format!("cannot create the {factory} element: {e}"))
        };
        let src = make("appsrc")?
            .downcast::<gst_app::AppSrc>()
            .map_err(|_| "appsrc is not an AppSrc".to_string())?;
        let caption = make("florencecaption")?;
        let sink = make("appsink")?
            .downcast::<gst_app::AppSink>()
            .map_err(|_| "appsink is not an AppSink".to_string())?;
        src.set_is_live(true);
        src.set_format(gst::Format::Time);
        src.set_property("block", false);
        sink.set_sync(false);
        // Nothing prerolls in this pipeline: frames only come with requests.
        sink.set_async(false);
        sink.set_max_buffers(64);
        caption.set_property("model-dir", model_dir.display().to_string());
        caption.set_property_from_str("mode", "every-frame");
        caption.set_property("variant", &config.model_variant);
        caption.set_property("threads", config.threads);
        caption.set_property("decode-slowdown", config.decode_slowdown);
        // Checked at load; the element refuses a bad name at start too.
        caption.set_property("execution-provider", &config.execution_provider);
        // The configuration takes 384 or 768 only (checked at load).
        if let Some(size) = ImageSize::from_pixels(config.image_size) {
            caption.set_property("image-size", size);
        }
        caption.set_property_from_str("backend", config.backend.as_str());
        caption.set_property("hailo-group-id", &config.hailo.group_id);
        caption.set_property("hailo-priority", config.hailo.scheduler_priority);
        caption.set_property("hailo-timeout", config.hailo.run_timeout_ms);
        caption.set_property("hailo-idle-release", config.hailo.idle_release_s);
        if let Some(lib) = &config.ort_library {
            caption.set_property("ort-library", lib.display().to_string());
        }
        if let Some(t) = &config.vqa_prompt_template {
            caption.set_property("vqa-template", t);
        }
        let pipeline = gst::Pipeline::with_name("florenced");
        pipeline
            .add_many([src.upcast_ref(), &caption, sink.upcast_ref()])
            .map_err(|e| e.to_string())?;
        gst::Element::link_many([src.upcast_ref(), &caption, sink.upcast_ref()])
            .map_err(|e| e.to_string())?;
        let change = pipeline.set_state(gst::State::Playing);
        tracing::debug!(?change, "pipeline to PLAYING");
        if change.is_err() {
            let reason = bus_error(&pipeline)
                .unwrap_or_else(|| "the pipeline refused to start (no error posted)".into());
            let _ = pipeline.set_state(gst::State::Null);
            return Err(reason);
        }
        let (res, state, _) = pipeline.state(gst::ClockTime::from_seconds(60));
        if res.is_err() || state != gst::State::Playing {
            let reason = bus_error(&pipeline).unwrap_or_else(|| format!("pipeline is {state:?}"));
            let _ = pipeline.set_state(gst::State::Null);
            return Err(reason);
        }
        log_model(&pipeline, model_dir);
        Ok(InferencePipeline {
            pipeline,
            src,
            caption,
            sink,
            config: config.clone(),
            frame: 0,
            broken: false,
        })
    }

    /// One short caption of a gray frame through the whole pipeline: ONNX
    /// Runtime's first run (allocations, kernel selection) happens here rather
    /// than in the first request, and a model that cannot run fails start-up.
    fn warm_up(&mut self, config: &Config) -> Result<(), String> {
        let started = Instant::now();
        // Kept open for the run: a closed reply means the client went away.
        let (reply, _receiver) = oneshot::channel();
        let mut job = Job {
            id: "warm-up".into(),
            image: RgbImage::from_rgb(64, 64, vec![128; 64 * 64 * 3]).map_err(|e| e.to_string())?,
            params: RequestParams {
                task: Some(Task::Caption),
                max_new_tokens: Some(2),
                min_new_tokens: Some(0),
                temperature: Some(0.0),
                ..RequestParams::default()
            },
            then: Vec::new(),
            enqueued: started,
            deadline: started + Duration::from_secs_f64(config.request_timeout_s),
            reply,
        };
        match self.infer(&mut job, config.request_timeout_s, &AtomicBool::new(false)) {
            // The service starts while another process holds the Hailo device;
            // requests answer 503 until it is free.
            Err(
                e @ JobError::Failed {
                    kind: ErrorKind::DeviceBusy,
                    ..
                },
            ) => {
                tracing::warn!(error = %e, "warm-up skipped: the Hailo device is busy");
                return Ok(());
            }
            r => r.map_err(|e| format!("the warm-up inference failed: {e}"))?,
        };
        tracing::info!(
            warmup_ms = started.elapsed().as_millis() as u64,
            "warm-up inference done"
        );
        Ok(())
    }

    fn restart(&mut self) -> Result<(), String> {
        self.stop();
        *self = InferencePipeline::build(&self.config)?;
        Ok(())
    }

    fn stop(&self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }

    /// The job's frame as an RGB sample carrying its request; the pixels move into
    /// the buffer (copied row by row only when GStreamer's 4-byte row alignment
    /// needs padding).
    fn sample_for(&mut self, job: &mut Job) -> Result<gst::Sample, String> {
        let img = &mut job.image;
        let info =
            gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, img.width, img.height)
                .fps(gst::Fraction::new(0, 1))
                .build()
                .map_err(|e| {
                    format!("cannot describe a {}x{} frame: {e}", img.width, img.height)
                })?;
        let stride = info.stride()[0] as usize;
        let row = img.width as usize * 3;
        let data = if stride == row {
            std::mem::take(&mut img.data)
        } else {
            let mut padded = vec![0u8; info.size()];
            for (dst, src) in padded.chunks_mut(stride).zip(img.data.chunks(row)) {
                dst[..row].copy_from_slice(src);
            }
            padded
        };
        let mut buffer = gst::Buffer::from_mut_slice(data);
        {
            let b = buffer.get_mut().ok_or("buffer not writable")?;
            self.frame += 1;
            b.set_pts(gst::ClockTime::from_mseconds(self.frame));
            let mut meta = gst::meta::CustomMeta::add(b, REQUEST_META_NAME)
                .map_err(|e| format!("cannot add {REQUEST_META_NAME}: {e}"))?;
            // The element stops the inference at the deadline (monotonic clock, µs).
            let left = job.deadline.saturating_duration_since(Instant::now());
            BufferRequest {
                id: Some(job.id.clone()),
                deadline_us: Some(
                    gst::glib::monotonic_time().saturating_add(left.as_micros() as i64),
                ),
                params: job.params.clone(),
            }
            .write(meta.mut_structure());
        }
        let caps = info.to_caps().map_err(|e| e.to_string())?;
        Ok(gst::Sample::builder().buffer(&buffer).caps(&caps).build())
    }

    /// Runs one job; `abort` set meanwhile cancels it, like a client that went away.
    fn infer(&mut self, job: &mut Job, timeout_s: f64, abort: &AtomicBool) -> Reply {
        if let Some(e) = bus_error(&self.pipeline) {
            self.broken = true;
            return Err(JobError::Unavailable(e));
        }
        let sample = self
            .sample_for(job)
            .map_err(|e| JobError::failed(ErrorKind::InferenceFailed, e))?;
        if let Err(e) = self.src.push_sample(&sample) {
            self.broken = true;
            return Err(JobError::Unavailable(format!(
                "appsrc refused the frame: {e:?}"
            )));
        }
        // The element stops the inference at the job's deadline (`deadline-us`); the
        // grace period lets that late answer still be matched to this job.
        let until = job
            .deadline
            .max(Instant::now() + Duration::from_secs_f64(timeout_s.min(5.0)));
        let mut cancelled = false;
        loop {
            if let Some(e) = bus_error(&self.pipeline) {
                self.broken = true;
                return Err(JobError::failed(ErrorKind::InferenceFailed, e));
            }
            if Instant::now() >= until {
                return Err(JobError::timed_out());
            }
            // Returns false until the element has started this request.
            let shutting_down = abort.load(Ordering::SeqCst);
            if !cancelled && (shutting_down || job.reply.is_closed()) {
                cancelled = self.caption.emit_by_name::<bool>("cancel", &[&job.id]);
                if cancelled && shutting_down {
                    tracing::info!(request_id = %job.id, "shutdown deadline passed; inference cancelled");
                } else if cancelled {
                    tracing::info!(request_id = %job.id, "client went away; inference cancelled");
                }
            }
            let Some(sample) = self.sink.try_pull_sample(gst::ClockTime::from_mseconds(50)) else {
                if self.sink.is_eos() {
                    self.broken = true;
                    return Err(JobError::Unavailable("the pipeline ended".into()));
                }
                continue;
            };
            let Some(buffer) = sample.buffer() else {
                continue;
            };
            let Ok(meta) = gst::meta::CustomMeta::from_buffer(buffer, META_NAME) else {
                tracing::warn!("a frame came back without a result; skipping it");
                continue;
            };
            let s = meta.structure();
            let id = ResultField::request_id_of(s).unwrap_or_default();
            if id != job.id {
                tracing::debug!(stale = %id, "dropping the answer of an earlier request");
                continue;
            }
            let answer = ElementAnswer::decode(s).map_err(|e| {
                JobError::failed(
                    ErrorKind::InferenceFailed,
                    format!("the element's answer is malformed: {e}"),
                )
            })?;
            return match answer {
                ElementAnswer::Failure(f) => Err(JobError::failed(f.kind, f.message)),
                ElementAnswer::Result(r) => Ok(Answer {
                    task: r.task,
                    text: r.text,
                    result: r.result,
                    token_count: r.token_count,
                    inference_ms: r.inference_ms,
                    queue_ms: 0.0,
                    model_wait_ms: r.queue_wait_ms,
                    image_size: r.image_size,
                    vision_cached: r.vision_cached,
                }),
            };
        }
    }
}

/// A pipeline dropped without `stop` (a reload whose other pipeline failed to
/// load) still releases its model: GStreamer must not dispose a PLAYING element.
impl Drop for InferencePipeline {
    fn drop(&mut self) {
        self.stop();
    }
}
