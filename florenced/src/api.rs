//! The HTTP routes of api-contract.md and the middleware every request passes:
//! request id, API key, rate limit, metrics and the one log line per request.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use gstflorence::engine::image_io::{self, DecodeError};
use gstflorence::engine::preprocess::RgbImage;
use gstflorence::engine::task::Task;
use serde_json::json;
use tokio::sync::oneshot;

use crate::body_budget::BodyBudget;
use crate::browser;
use crate::config::{BackendChoice, Config};
use crate::error::ApiError;
use crate::metrics::{Gauges, Metrics};
use crate::peer::Peer;
use crate::pool::Pool;
use crate::request::{BodyIntake, BodyKind, BodyLimits, Fields, read_body};
use crate::schema::{
    self, AnalyzeRequest, AnalyzeResponse, AnalyzeResult, CaptionForm, CaptionQuery,
    CaptionRequest, CaptionResponse, InferenceErrors, RawImage, TaskForm, TaskQuery, TaskRequest,
    TaskResponse, VqaForm, VqaQuery, VqaRequest, VqaResponse,
};
use crate::worker::{Answer, Health, Job, JobError, Reply, SubmitError, Workers};
use gstflorence::engine::BackendKind;

pub struct AppState {
    /// Replaced by a reload; a request reads it once, at its start.
    config: RwLock<Arc<Config>>,
    pub workers: Pool,
    pub load_error: Mutex<Option<String>>,
    /// Why the last reload failed (the service goes on as it was).
    pub reload_error: Mutex<Option<String>>,
    pub draining: AtomicBool,
    pub metrics: Metrics,
    /// Inference requests inside handlers (the drain waits for them).
    pub active: AtomicUsize,
    /// Request body bytes in flight (`http.body_bytes_in_flight`).
    pub body_budget: BodyBudget,
    limiter: RwLock<Option<Arc<RateLimiter>>>,
    next_id: AtomicU64,
    id_prefix: String,
}

impl AppState {
    pub fn new(config: Arc<Config>) -> Arc<AppState> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Arc::new(AppState {
            limiter: RwLock::new(RateLimiter::new(&config)),
            metrics: Metrics::new(
                Duration::from_secs(config.metrics.retention_seconds),
                config.request_timeout_s,
            ),
            body_budget: BodyBudget::new(config.http.body_bytes_in_flight),
            config: RwLock::new(config),
            workers: Pool::default(),
            load_error: Mutex::new(None),
            reload_error: Mutex::new(None),
            draining: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            id_prefix: format!(
                "{:08x}",
                (nanos as u64 ^ u64::from(std::process::id())) as u32
            ),
        })
    }

    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A reload's new configuration (rate-limit buckets are kept unless the limit changed).
    pub fn set_config(&self, config: Arc<Config>) {
        let mut current = self.config.write().unwrap_or_else(|e| e.into_inner());
        if current.rate_limit != config.rate_limit {
            *self.limiter.write().unwrap_or_else(|e| e.into_inner()) = RateLimiter::new(&config);
        }
        *current = config;
    }

    fn limiter(&self) -> Option<Arc<RateLimiter>> {
        self.limiter
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Queues a job on the current pipelines; returns the ones that took it.
    fn submit(&self, mut job: Job) -> Result<Arc<Workers>, ApiError> {
        loop {
            let w = self.ready_workers()?;
            match w.submit(job) {
                Ok(()) => return Ok(w),
                // A reload replaced the pipelines since `ready_workers`: the new ones take it.
                Err(SubmitError::Retired(j)) => job = *j,
                Err(e) => return Err(submit_error(e, self, &w)),
            }
        }
    }

    fn ready_workers(&self) -> Result<Arc<Workers>, ApiError> {
        if self.draining.load(Ordering::SeqCst) {
            return Err(ApiError::not_ready("the service is shutting down"));
        }
        let Some(w) = self.workers.get() else {
            return Err(ApiError::not_ready("the model is still loading"));
        };
        match w.health() {
            Health::Ready => Ok(w),
            Health::Loading => Err(ApiError::not_ready("the model is still loading")),
            Health::Stopping => Err(ApiError::not_ready("the service is shutting down")),
            Health::Failed(_) if w.kind().has_device() => Err(ApiError::device_error()),
            Health::Failed(_) => Err(ApiError::not_ready("the model is not available")),
        }
    }

    /// How this request's body may be read.
    fn intake(&self) -> BodyIntake<'_> {
        BodyIntake {
            limits: BodyLimits::new(self.config().max_image_bytes),
            budget: &self.body_budget,
            timeout: Duration::from_secs_f64(self.config().http.body_read_timeout_s),
        }
    }

    fn gauges(&self) -> Gauges {
        Gauges {
            queue_depth: self.workers.queued(),
            running: self.workers.running(),
            body_bytes: self.body_budget.in_use(),
        }
    }
}

/// Per-client token buckets.
struct RateLimiter {
    per_second: f64,
    burst: f64,
    clients: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    fn new(config: &Config) -> Option<Arc<RateLimiter>> {
        config.rate_limit.as_ref().map(|r| {
            Arc::new(RateLimiter {
                per_second: f64::from(r.requests_per_minute) / 60.0,
                burst: f64::from(r.burst),
                clients: Mutex::new(HashMap::new()),
            })
        })
    }

    /// Ok, or the seconds until the client may retry.
    fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if clients.len() > 10_000 {
            clients.retain(|_, (_, t)| now.duration_since(*t) < Duration::from_secs(600));
        }
        let (tokens, last) = clients.entry(ip).or_insert((self.burst, now));
        *tokens =
            (*tokens + now.duration_since(*last).as_secs_f64() * self.per_second).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.per_second).ceil() as u64)
        }
    }
}

#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// What an inference handler tells the observing middleware (for logs and metrics).
#[derive(Debug, Clone, Default)]
struct Served {
    inference_ms: Option<f64>,
    image_bytes: Option<usize>,
    caption_length: Option<usize>,
}

/// Constant-time comparison, so the key cannot be guessed byte by byte from timings.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0);
    }
    diff == 0
}

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(k) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(k.trim());
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = auth.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

fn client_request_id(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("x-request-id")?.to_str().ok()?.trim();
    (!v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)))
    .then(|| v.to_owned())
}

async fn observe(
    State(st): State<Arc<AppState>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let config = st.config();
    let id = client_request_id(req.headers()).unwrap_or_else(|| {
        format!(
            "{}-{}",
            st.id_prefix,
            st.next_id.fetch_add(1, Ordering::SeqCst)
        )
    });
    req.extensions_mut().insert(RequestId(id.clone()));
    let endpoint = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_owned(), |m| m.as_str().to_owned());
    let path = req.uri().path().to_owned();
    let inference_route = path.starts_with("/v1/");
    let protected = inference_route
        || (config.api_key_protects_health && (path == "/health" || path == "/metrics"));

    let mut resp = if let Some(key) = config.api_key.as_deref()
        && protected
        && !presented_key(req.headers()).is_some_and(|k| same_secret(k.as_bytes(), key.as_bytes()))
    {
        ApiError::unauthorized().into_response()
    } else if let Some(limiter) = st.limiter()
        && inference_route
        && let Err(retry) = limiter.check(addr.ip())
    {
        ApiError::rate_limited(retry).into_response()
    } else {
        next.run(req).await
    };

    let status = resp.status().as_u16();
    let served = resp
        .extensions()
        .get::<Served>()
        .cloned()
        .unwrap_or_default();
    let error = resp.extensions().get::<ApiError>().map(|e| e.code);
    let elapsed = start.elapsed();
    st.metrics
        .record(&endpoint, status, elapsed, served.inference_ms);
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let duration_ms = (elapsed.as_secs_f64() * 1e4).round() / 10.0;
    let inference_time_ms = served.inference_ms.map(f64::round);
    if inference_route || (status >= 400 && status != 503) {
        let message = match error {
            None => "request served",
            Some("inference_failed") => "inference failed",
            Some(_) => "request refused",
        };
        macro_rules! log_at {
            ($level:ident) => {
                tracing::$level!(
                    request_id = %id,
                    endpoint = %endpoint,
                    status,
                    error = error,
                    client = %addr.ip(),
                    duration_ms,
                    inference_time_ms,
                    image_size_bytes = served.image_bytes,
                    caption_length = served.caption_length,
                    "{message}"
                )
            };
        }
        // A client's mistake (4xx) is not the service's problem: INFO, like a
        // success, so a fuzzing client cannot flood the warnings. 503 (loading,
        // overloaded, draining) is a warning: the service cannot serve.
        if status == 503 {
            log_at!(warn);
        } else if status >= 500 {
            log_at!(error);
        } else {
            log_at!(info);
        }
        if let Some(ms) = served.inference_ms
            && ms > config.slow_inference_ms
        {
            tracing::warn!(
                request_id = %id,
                endpoint = %endpoint,
                inference_time_ms = ms.round(),
                "slow inference: {:.0} ms (threshold {:.0} ms)",
                ms,
                config.slow_inference_ms
            );
        }
    } else {
        tracing::debug!(request_id = %id, endpoint = %endpoint, status, duration_ms, "request served");
    }
    resp
}

/// The routes behind their middleware; `listening` is the bound address (the
/// Host check depends on whether it is loopback).
pub fn router(st: Arc<AppState>, listening: SocketAddr) -> Router {
    let guard = Arc::new(browser::Guard::new(&st.config().http, listening));
    let cors = browser::cors(&st.config().http);
    let routes = Router::new()
        .route("/v1/caption", post(caption))
        .route("/v1/vqa", post(vqa))
        .route("/v1/tasks/{task}", post(task))
        .route("/v1/analyze", post(analyze))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .merge(crate::docs::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(guard, browser::guard))
        .layer(middleware::from_fn_with_state(st.clone(), observe));
    // Outermost, so that a preflight is answered before the API key check.
    match cors {
        Some(cors) => routes.layer(cors),
        None => routes,
    }
    .with_state(st)
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(req.uri().path())
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

#[derive(Debug, Clone, Copy)]
enum Route {
    Caption,
    Vqa,
    Task(Task),
}

/// Counts a handler as active while it lives (the drain waits for it).
struct Active<'a>(&'a AtomicUsize);

impl<'a> Active<'a> {
    fn new(c: &'a AtomicUsize) -> Self {
        c.fetch_add(1, Ordering::SeqCst);
        Active(c)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[utoipa::path(
    post,
    path = "/v1/caption",
    operation_id = "caption",
    tag = "inference",
    summary = "Caption an image",
    params(CaptionQuery),
    request_body(
        description = "The image and parameters as JSON, as a multipart form, or the raw image with the parameters in the query string",
        content(
            (CaptionRequest = "application/json"),
            (CaptionForm = "multipart/form-data"),
            (RawImage = "image/jpeg"),
            (RawImage = "image/png"),
            (RawImage = "image/webp"),
            (RawImage = "image/bmp"),
        )
    ),
    responses(
        (status = 200, description = "The caption", body = CaptionResponse,
            headers(
                ("x-queue-time" = u64, description = "Milliseconds the request waited for the model"),
                ("x-inference-time" = u64, description = "Milliseconds of model time"),
                ("x-request-id" = String, description = "The request's id (the client's X-Request-Id if valid), also in the log"),
            )
        ),
        InferenceErrors,
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn caption(State(st): State<Arc<AppState>>, req: Request) -> Response {
    respond(infer(&st, req, Route::Caption).await)
}

#[utoipa::path(
    post,
    path = "/v1/vqa",
    operation_id = "vqa",
    tag = "inference",
    summary = "Answer a question about an image",
    params(VqaQuery),
    request_body(
        description = "The image and parameters as JSON, as a multipart form, or the raw image with the parameters in the query string",
        content(
            (VqaRequest = "application/json"),
            (VqaForm = "multipart/form-data"),
            (RawImage = "image/jpeg"),
            (RawImage = "image/png"),
            (RawImage = "image/webp"),
            (RawImage = "image/bmp"),
        )
    ),
    responses(
        (status = 200, description = "The answer", body = VqaResponse,
            headers(
                ("x-queue-time" = u64, description = "Milliseconds the request waited for the model"),
                ("x-inference-time" = u64, description = "Milliseconds of model time"),
                ("x-request-id" = String, description = "The request's id (the client's X-Request-Id if valid), also in the log"),
            )
        ),
        InferenceErrors,
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn vqa(State(st): State<Arc<AppState>>, req: Request) -> Response {
    respond(infer(&st, req, Route::Vqa).await)
}

#[utoipa::path(
    post,
    path = "/v1/tasks/{task}",
    operation_id = "task",
    tag = "inference",
    summary = "Run a Florence-2 task",
    params(TaskQuery, ("task" = String, Path, description = "The task")),
    request_body(
        description = "The image and parameters as JSON, as a multipart form, or the raw image with the parameters in the query string",
        content(
            (TaskRequest = "application/json"),
            (TaskForm = "multipart/form-data"),
            (RawImage = "image/jpeg"),
            (RawImage = "image/png"),
            (RawImage = "image/webp"),
            (RawImage = "image/bmp"),
        )
    ),
    responses(
        (status = 200, description = "The task's result", body = TaskResponse,
            headers(
                ("x-queue-time" = u64, description = "Milliseconds the request waited for the model"),
                ("x-inference-time" = u64, description = "Milliseconds of model time"),
                ("x-request-id" = String, description = "The request's id (the client's X-Request-Id if valid), also in the log"),
            )
        ),
        InferenceErrors,
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn task(
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    match name.parse::<Task>() {
        Ok(t) => respond(infer(&st, req, Route::Task(t)).await),
        Err(e) => ApiError::invalid_params(e.to_string()).into_response(),
    }
}

#[utoipa::path(
    post,
    path = "/v1/analyze",
    operation_id = "analyze",
    tag = "inference",
    summary = "Run several tasks on one image (one vision pass)",
    request_body(
        description = "The image, the tasks in order, and generation parameters for all of them",
        content((AnalyzeRequest = "application/json"))
    ),
    responses(
        (status = 200, description = "Each task's answer, in the request's order", body = AnalyzeResponse,
            headers(
                ("x-queue-time" = u64, description = "Milliseconds the request waited for the model"),
                ("x-inference-time" = u64, description = "Milliseconds of model time over all tasks"),
                ("x-request-id" = String, description = "The request's id (the client's X-Request-Id if valid), also in the log"),
            )
        ),
        InferenceErrors,
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn analyze(State(st): State<Arc<AppState>>, req: Request) -> Response {
    respond(analyze_tasks(&st, req).await)
}

/// Several tasks on one image: decoded once, and queued as one job whose tasks run
/// back to back on one pipeline, so the engine runs the vision encoder once.
async fn analyze_tasks(st: &Arc<AppState>, req: Request) -> Result<Response, ApiError> {
    let _active = Active::new(&st.active);
    let config = &st.config();
    let deadline = Instant::now() + Duration::from_secs_f64(config.request_timeout_s);
    let workers = st.ready_workers()?;
    let id = req
        .extensions()
        .get::<RequestId>()
        .map_or_else(String::new, |r| r.0.clone());
    let peer = Waiting::of(&req);
    let (parts, body) = req.into_parts();
    let kind = BodyKind::of(&parts.headers)?;
    if kind != BodyKind::Json {
        return Err(ApiError::unsupported_media_type(
            "/v1/analyze takes a JSON body (Content-Type: application/json)",
        ));
    }
    let intake = st.intake();
    let reading = peer.reading_body();
    let (bytes, body_permit) = read_body(&parts.headers, body, kind, &intake).await?;
    drop(reading);
    let fields = Fields::parse(&parts.headers, parts.uri.query(), kind, bytes).await?;
    let specs = fields.tasks()?;
    if specs.iter().any(|t| t.task == Task::Vqa) && !workers.vqa_supported {
        return Err(ApiError::vqa_not_configured());
    }
    let base = fields.params(Task::Caption.token(), config)?;
    let (image, n_bytes) = decode_image(&fields, config, &intake.limits).await?;
    drop(fields);
    drop(body_permit);

    let mut receivers = Vec::with_capacity(specs.len());
    let mut jobs = Vec::with_capacity(specs.len());
    for (k, spec) in specs.into_iter().enumerate() {
        let (tx, rx) = oneshot::channel();
        let job_id = format!("{id}.{k}");
        receivers.push((job_id.clone(), rx));
        jobs.push(Job {
            id: job_id,
            image: RgbImage::default(),
            params: crate::worker::Params {
                task: spec.task.token().to_owned(),
                text: spec.text,
                region: spec.region,
                ..base.clone()
            },
            enqueued: Instant::now(),
            deadline,
            reply: tx,
            then: Vec::new(),
        });
    }
    let mut head = jobs.remove(0);
    head.image = image;
    head.then = jobs;
    let workers = st.submit(head)?;
    let mut answers = Vec::with_capacity(receivers.len());
    for (job_id, rx) in receivers {
        answers.push(await_answer(rx, deadline, &job_id, &workers, &peer).await?);
    }

    let inference_ms: f64 = answers.iter().map(|a| a.inference_ms).sum();
    let queue_ms = answers.first().map_or(0.0, |a| a.queue_ms);
    let image_size = answers.first().map_or([0, 0], |a| a.image_size);
    let caption_length = answers.iter().map(|a| a.text.chars().count()).sum();
    let results = answers
        .into_iter()
        .map(|a| AnalyzeResult {
            result: json!({ a.task.clone(): a.result }),
            task: a.task,
            text: a.text,
            token_count: a.token_count,
            inference_time_ms: a.inference_ms.round() as u64,
            vision_cached: a.vision_cached,
        })
        .collect();
    let mut resp = axum::Json(AnalyzeResponse {
        results,
        inference_time_ms: inference_ms.round() as u64,
        model: "florence-2",
        model_variant: workers.model_variant.clone(),
        backend: workers.backend().to_owned(),
        image_size,
        queue_time_ms: (queue_ms * 10.0).round() / 10.0,
    })
    .into_response();
    timing_headers(&mut resp, queue_ms, inference_ms);
    resp.extensions_mut().insert(Served {
        inference_ms: Some(inference_ms),
        image_bytes: Some(n_bytes),
        caption_length: Some(caption_length),
    });
    Ok(resp)
}

fn timing_headers(resp: &mut Response, queue_ms: f64, inference_ms: f64) {
    let h = resp.headers_mut();
    for (name, v) in [
        ("x-queue-time", queue_ms),
        ("x-inference-time", inference_ms),
    ] {
        if let Ok(v) = HeaderValue::from_str(&format!("{}", v.round() as u64)) {
            h.insert(name, v);
        }
    }
}

fn respond(r: Result<Response, ApiError>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

const CAPTION_TASKS: [Task; 3] = [
    Task::Caption,
    Task::DetailedCaption,
    Task::MoreDetailedCaption,
];

fn decode_error(e: DecodeError) -> ApiError {
    match e {
        DecodeError::TooLarge { .. } => ApiError::too_large(e.to_string()),
        _ => ApiError::invalid_image(e.to_string()),
    }
}

async fn infer(st: &Arc<AppState>, req: Request, route: Route) -> Result<Response, ApiError> {
    let _active = Active::new(&st.active);
    let start = Instant::now();
    let config = &st.config();
    let deadline = start + Duration::from_secs_f64(config.request_timeout_s);
    let workers = st.ready_workers()?;
    let id = req
        .extensions()
        .get::<RequestId>()
        .map_or_else(String::new, |r| r.0.clone());
    let peer = Waiting::of(&req);
    let (parts, body) = req.into_parts();
    let kind = BodyKind::of(&parts.headers)?;
    let intake = st.intake();
    let reading = peer.reading_body();
    let (bytes, body_permit) = read_body(&parts.headers, body, kind, &intake).await?;
    drop(reading);
    let fields = Fields::parse(&parts.headers, parts.uri.query(), kind, bytes).await?;

    let (task, text) = match route {
        Route::Caption => {
            let name = fields.string("task")?.unwrap_or_else(|| "caption".into());
            let task = name
                .parse::<Task>()
                .ok()
                .filter(|t| CAPTION_TASKS.contains(t))
                .ok_or_else(|| {
                    ApiError::invalid_params(
                        "task must be caption, detailed_caption or more_detailed_caption",
                    )
                })?;
            (task, None)
        }
        Route::Vqa => {
            if !workers.vqa_supported {
                return Err(ApiError::vqa_not_configured());
            }
            let q = fields
                .text_input("question")?
                .ok_or_else(|| ApiError::invalid_params("question is required and non-empty"))?;
            (Task::Vqa, Some(q))
        }
        Route::Task(t) => {
            if t == Task::Vqa && !workers.vqa_supported {
                return Err(ApiError::vqa_not_configured());
            }
            let text = match fields.text_input("text")? {
                Some(t) => Some(t),
                None => fields.text_input("question")?,
            };
            (t, text)
        }
    };
    let mut params = fields.params(task.token(), config)?;
    params.text = text;
    if !matches!(route, Route::Task(_)) {
        params.region = None;
    }
    let (image, n_bytes) = decode_image(&fields, config, &intake.limits).await?;
    drop(fields);
    drop(body_permit);

    let (tx, rx) = oneshot::channel();
    let job = Job {
        id: id.clone(),
        image,
        params,
        enqueued: Instant::now(),
        deadline,
        reply: tx,
        then: Vec::new(),
    };
    let workers = st.submit(job)?;
    let answer = await_answer(rx, deadline, &id, &workers, &peer).await?;

    let inference_time_ms = answer.inference_ms.round() as u64;
    let queue_time_ms = (answer.queue_ms * 10.0).round() / 10.0;
    // One macro fills the fields every answer has, so the three shapes cannot differ.
    macro_rules! answer_body {
        ($ty:ident { $($field:ident: $value:expr),* }) => {
            axum::Json($ty {
                $($field: $value,)*
                inference_time_ms,
                model: "florence-2",
                token_count: answer.token_count,
                model_variant: workers.model_variant.clone(),
                backend: workers.backend().to_owned(),
                task: answer.task.clone(),
                image_size: answer.image_size,
                queue_time_ms,
            })
            .into_response()
        };
    }
    let body = match route {
        Route::Caption => answer_body!(CaptionResponse {
            caption: answer.text.clone()
        }),
        Route::Vqa => answer_body!(VqaResponse {
            answer: answer.text.clone()
        }),
        Route::Task(_) => answer_body!(TaskResponse {
            text: answer.text.clone(),
            result: json!({ answer.task.clone(): answer.result })
        }),
    };
    let mut resp = body;
    timing_headers(&mut resp, answer.queue_ms, answer.inference_ms);
    resp.extensions_mut().insert(Served {
        inference_ms: Some(answer.inference_ms),
        image_bytes: Some(n_bytes),
        caption_length: Some(answer.text.chars().count()),
    });
    Ok(resp)
}

fn submit_error(e: SubmitError, st: &AppState, workers: &Workers) -> ApiError {
    match e {
        SubmitError::Overloaded => {
            let avg = st.metrics.average_inference_ms().max(100.0);
            let waiting = workers.queued() as f64 + 1.0;
            let per = st.config().max_concurrent_requests as f64;
            ApiError::overloaded((avg * waiting / per / 1e3).ceil() as u64)
        }
        SubmitError::NotReady | SubmitError::Retired(_) if st.draining.load(Ordering::SeqCst) => {
            ApiError::not_ready("the service is shutting down")
        }
        SubmitError::NotReady | SubmitError::Retired(_) => {
            ApiError::not_ready("the model is not available")
        }
    }
}

/// The client of a request, watched while its answer is pending.
struct Waiting {
    peer: Option<Peer>,
    http11: bool,
}

impl Waiting {
    fn of(req: &Request) -> Waiting {
        Waiting {
            peer: req.extensions().get::<Peer>().cloned(),
            http11: req.version() == axum::http::Version::HTTP_11,
        }
    }

    /// Marks the connection as reading a body (it may be closed for a new one).
    fn reading_body(&self) -> Option<crate::peer::ReadingBody> {
        self.peer.as_ref().map(Peer::reading_body)
    }

    /// Resolves when the client has actually disconnected (a half-close is not one).
    async fn gone(&self) {
        match &self.peer {
            Some(p) => p.disconnected(self.http11).await,
            None => std::future::pending().await,
        }
    }
}

/// Waits for a job's answer until the request's deadline or until its client
/// disconnects (dropping `rx` tells the worker to skip or cancel the job); the
/// one place a worker's outcome becomes an HTTP error.
async fn await_answer(
    rx: oneshot::Receiver<Reply>,
    deadline: Instant,
    id: &str,
    workers: &Workers,
    client: &Waiting,
) -> Result<Answer, ApiError> {
    let answer = tokio::select! {
        a = tokio::time::timeout_at(deadline.into(), rx) => a,
        () = client.gone() => return Err(ApiError::client_gone()),
    };
    match answer {
        Err(_) => Err(ApiError::timeout()),
        Ok(Err(_)) => {
            tracing::error!(request_id = %id, "the worker dropped the request");
            Err(ApiError::inference_failed())
        }
        Ok(Ok(Err(e))) => Err(match e {
            JobError::Invalid(m) => ApiError::invalid_params(m),
            JobError::Timeout => ApiError::timeout(),
            // Only sent for a client that went away: nobody reads this.
            JobError::Cancelled => ApiError::not_ready("the request was cancelled"),
            JobError::ShuttingDown => ApiError::not_ready("the service is shutting down"),
            JobError::Failed(detail) => {
                tracing::error!(request_id = %id, detail = %detail, "inference failed");
                ApiError::inference_failed()
            }
            JobError::DeviceBusy(detail) => {
                tracing::warn!(request_id = %id, detail = %detail, "Hailo device busy");
                ApiError::device_error()
            }
            JobError::Device(detail) => {
                tracing::error!(request_id = %id, detail = %detail, "Hailo device failed");
                ApiError::device_error()
            }
            JobError::Unavailable(detail) => {
                tracing::error!(request_id = %id, detail = %detail, "pipeline unavailable");
                if workers.kind().has_device() {
                    ApiError::device_error()
                } else {
                    ApiError::not_ready("the model is not available")
                }
            }
        }),
        Ok(Ok(Ok(a))) => Ok(a),
    }
}

/// Decodes the request's image off the async threads, within the configured limits.
async fn decode_image(
    fields: &Fields,
    config: &Config,
    limits: &BodyLimits,
) -> Result<(RgbImage, usize), ApiError> {
    let image_bytes = fields.image()?;
    let n_bytes = image_bytes.len();
    limits.check_image(n_bytes)?;
    let limits = config.limits.image_limits();
    let image = tokio::task::spawn_blocking(move || image_io::decode(&image_bytes, &limits, true))
        .await
        .map_err(|_| ApiError::inference_failed())?
        .map_err(decode_error)?;
    Ok((image, n_bytes))
}

fn cpu_temperature_c() -> Option<f64> {
    let raw = std::fs::read_to_string("/sys/class/thermal/thermal_zone0/temp").ok()?;
    let milli: f64 = raw.trim().parse().ok()?;
    Some((milli / 100.0).round() / 10.0)
}

#[utoipa::path(
    get,
    path = "/health",
    operation_id = "health",
    tag = "service",
    summary = "Service health",
    responses(
        (status = 200, description = "Ready to serve", body = schema::Health),
        (status = 503, description = "Loading, failed or shutting down (`error` says why)", body = schema::Health),
    )
)]
pub(crate) async fn health(State(st): State<Arc<AppState>>) -> Response {
    let w = st.workers.get();
    let failed = st
        .load_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let state = if st.draining.load(Ordering::SeqCst) {
        Health::Stopping
    } else if let Some(e) = failed {
        Health::Failed(e)
    } else {
        w.as_ref().map_or(Health::Loading, |w| w.health())
    };
    let hailo = w
        .as_ref()
        .map_or(st.config().backend == BackendChoice::Hailo, |w| {
            w.kind().has_device()
        });
    // A device that failed is reopened by the next request; until one succeeds
    // the service is not healthy.
    let device = w.as_ref().map(|w| w.hailo_device());
    let disconnected = hailo && device.as_deref() == Some("disconnected");
    let (status, error) = match &state {
        Health::Ready if disconnected => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("the Hailo device failed; the next request reopens it".to_owned()),
        ),
        Health::Ready => (StatusCode::OK, None),
        Health::Loading => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("the model is loading".to_owned()),
        ),
        Health::Stopping => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("the service is shutting down".to_owned()),
        ),
        Health::Failed(reason) => (StatusCode::SERVICE_UNAVAILABLE, Some(reason.clone())),
    };
    let body = schema::Health {
        status: if state == Health::Ready && !disconnected {
            schema::HealthStatus::Healthy
        } else {
            schema::HealthStatus::Unhealthy
        },
        model_loaded: state == Health::Ready,
        uptime_seconds: st.metrics.uptime().as_secs(),
        version: env!("CARGO_PKG_VERSION"),
        hailo_device: match (hailo, &state) {
            (false, _) => schema::HailoDevice::NotUsed,
            (true, Health::Ready) if !disconnected => schema::HailoDevice::Connected,
            (true, _) => schema::HailoDevice::Disconnected,
        },
        backend: if hailo {
            BackendKind::Hailo
        } else {
            BackendKind::Onnx
        }
        .name(),
        backend_reason: w
            .as_ref()
            .map(|w| w.backend_reason())
            .filter(|r| !r.is_empty()),
        model_variant: w.map(|w| w.model_variant.clone()),
        queue_depth: st.gauges().queue_depth,
        cpu_temperature_c: cpu_temperature_c(),
        error,
        reload_error: st
            .reload_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
    };
    (status, axum::Json(body)).into_response()
}

/// Prometheus text or JSON: `format` decides, else Accept; an unknown format is 422.
fn wants_prometheus(headers: &HeaderMap, query: Option<&str>) -> Result<bool, ApiError> {
    if let Some(q) = query {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            if k == "format" {
                return match &*v {
                    "prometheus" => Ok(true),
                    "json" => Ok(false),
                    _ => Err(ApiError::invalid_params(
                        "format must be json or prometheus",
                    )),
                };
            }
        }
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    Ok(accept.contains("text/plain") || accept.contains("application/openmetrics-text"))
}

#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "service",
    summary = "Metrics: JSON, or Prometheus text for Accept: text/plain (or application/openmetrics-text) or ?format=prometheus",
    params(schema::MetricsQuery),
    responses(
        (status = 200, description = "The metrics", content(
            (schema::MetricsSummary = "application/json"),
            (String = "text/plain"),
        )),
        (status = 422, description = "`invalid_parameters`: an unknown format", body = schema::Error),
    )
)]
pub(crate) async fn metrics(State(st): State<Arc<AppState>>, req: Request) -> Response {
    let g = st.gauges();
    let prometheus = match wants_prometheus(req.headers(), req.uri().query()) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if prometheus {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            st.metrics.prometheus(&g),
        )
            .into_response()
    } else {
        axum::Json(st.metrics.json(&g)).into_response()
    }
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "service",
    summary = "This document",
    responses((status = 200, description = "The OpenAPI document", body = Object))
)]
pub(crate) async fn openapi(State(st): State<Arc<AppState>>) -> Response {
    axum::Json(crate::openapi::document(&st.config())).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
        assert!(!same_secret(b"", b"a"));
        assert!(!same_secret(b"a", b""));
    }

    #[test]
    fn rate_limit_refills() {
        let l = RateLimiter {
            per_second: 1.0,
            burst: 2.0,
            clients: Mutex::new(HashMap::new()),
        };
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(l.check(ip).is_ok());
        assert!(l.check(ip).is_ok());
        assert_eq!(l.check(ip), Err(1));
        assert!(l.check("10.0.0.1".parse().unwrap()).is_ok());
    }
}
