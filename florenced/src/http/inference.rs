//! The inference routes: caption, vqa, tasks (each with its `/raw` twin) and
//! analyze; a request becomes a job on the pipelines and its answer a response.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Path, Request, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use gstflorence::engine::image_io::{self, DecodeError};
use gstflorence::engine::preprocess::RgbImage;
use gstflorence::engine::task::Task;
use gstflorence::protocol::{ErrorKind, RequestParams};
use serde_json::json;
use tokio::sync::oneshot;

use crate::config::Config;
use crate::http::body::{BodyKind, BodyLimits, read_body};
use crate::http::error::ApiError;
use crate::http::observe::{RequestId, Served};
use crate::http::peer::Peer;
use crate::http::request::Fields;
use crate::http::schema::{
    AnalyzeRequest, AnalyzeResponse, AnalyzeResult, CaptionForm, CaptionQuery, CaptionRequest,
    CaptionResponse, RawImage, TaskForm, TaskQuery, TaskRequest, TaskResponse, VqaForm, VqaQuery,
    VqaRequest, VqaResponse,
};
use crate::http::state::AppState;
use crate::worker::{Answer, Job, JobError, Reply, Workers};

/// The bodies a route takes. The contract's routes take JSON, a form, or a
/// raw image body with its fields in the query string; their `/raw` twins,
/// which the document shows for raw bodies (an operation's parameters cannot
/// depend on its body's type), take only the raw image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bodies {
    Any,
    RawImage,
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
    request_body(
        description = "The image and parameters as JSON or as a multipart form (for the image file as the body, with the parameters in the query string, see the /raw operation)",
        content(
            (CaptionRequest = "application/json"),
            (CaptionForm = "multipart/form-data"),
        )
    ),
    responses(
        (status = 200, description = "The caption", body = CaptionResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn caption(State(st): State<Arc<AppState>>, req: Request) -> Response {
    respond(infer(&st, req, Route::Caption, Bodies::Any).await)
}

#[utoipa::path(
    post,
    path = "/v1/caption/raw",
    operation_id = "caption_raw",
    tag = "inference",
    summary = "Caption an image sent as the body",
    params(CaptionQuery),
    request_body(
        description = "The image file as the body; the parameters in the query string",
        content(
            (RawImage = "image/jpeg"),
            (RawImage = "image/png"),
            (RawImage = "image/webp"),
            (RawImage = "image/bmp"),
        )
    ),
    responses(
        (status = 200, description = "The caption", body = CaptionResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn caption_raw(State(st): State<Arc<AppState>>, req: Request) -> Response {
    respond(infer(&st, req, Route::Caption, Bodies::RawImage).await)
}

#[utoipa::path(
    post,
    path = "/v1/vqa",
    operation_id = "vqa",
    tag = "inference",
    summary = "Answer a question about an image",
    request_body(
        description = "The image and parameters as JSON or as a multipart form (for the image file as the body, with the parameters in the query string, see the /raw operation)",
        content(
            (VqaRequest = "application/json"),
            (VqaForm = "multipart/form-data"),
        )
    ),
    responses(
        (status = 200, description = "The answer", body = VqaResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn vqa(State(st): State<Arc<AppState>>, req: Request) -> Response {
    respond(infer(&st, req, Route::Vqa, Bodies::Any).await)
}

#[utoipa::path(
    post,
    path = "/v1/vqa/raw",
    operation_id = "vqa_raw",
    tag = "inference",
    summary = "Answer a question about an image sent as the body",
    params(VqaQuery),
    request_body(
        description = "The image file as the body; the question and parameters in the query string",
        content(
            (RawImage = "image/jpeg"),
            (RawImage = "image/png"),
            (RawImage = "image/webp"),
            (RawImage = "image/bmp"),
        )
    ),
    responses(
        (status = 200, description = "The answer", body = VqaResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn vqa_raw(State(st): State<Arc<AppState>>, req: Request) -> Response {
    respond(infer(&st, req, Route::Vqa, Bodies::RawImage).await)
}

#[utoipa::path(
    post,
    path = "/v1/tasks/{task}",
    operation_id = "task",
    tag = "inference",
    summary = "Run a Florence-2 task",
    params(("task" = String, Path, description = "The task")),
    request_body(
        description = "The image and parameters as JSON or as a multipart form (for the image file as the body, with the parameters in the query string, see the /raw operation)",
        content(
            (TaskRequest = "application/json"),
            (TaskForm = "multipart/form-data"),
        )
    ),
    responses(
        (status = 200, description = "The task's result", body = TaskResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn task(
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    run_task(&st, &name, req, Bodies::Any).await
}

/// `/v1/tasks/{task}` and its `/raw` twin: the task named in the path.
async fn run_task(st: &Arc<AppState>, name: &str, req: Request, bodies: Bodies) -> Response {
    match name.parse::<Task>() {
        Ok(t) => respond(infer(st, req, Route::Task(t), bodies).await),
        Err(e) => ApiError::invalid_params(e.to_string()).into_response(),
    }
}

#[utoipa::path(
    post,
    path = "/v1/tasks/{task}/raw",
    operation_id = "task_raw",
    tag = "inference",
    summary = "Run a Florence-2 task on an image sent as the body",
    params(TaskQuery, ("task" = String, Path, description = "The task")),
    request_body(
        description = "The image file as the body; the task's input and the parameters in the query string",
        content(
            (RawImage = "image/jpeg"),
            (RawImage = "image/png"),
            (RawImage = "image/webp"),
            (RawImage = "image/bmp"),
        )
    ),
    responses(
        (status = 200, description = "The task's result", body = TaskResponse),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub(crate) async fn task_raw(
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    run_task(&st, &name, req, Bodies::RawImage).await
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
        (status = 200, description = "Each task's answer, in the request's order", body = AnalyzeResponse),
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
    let base = fields.params(Task::Caption, config)?;
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
            params: RequestParams {
                task: Some(spec.task),
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
    let model_wait_ms: f64 = answers.iter().map(|a| a.model_wait_ms).sum();
    let queue_ms = answers.first().map_or(0.0, |a| a.queue_ms);
    let image_size = answers.first().map_or([0, 0], |a| a.image_size);
    let caption_length = answers.iter().map(|a| a.text.chars().count()).sum();
    let vision_reused = answers.iter().filter(|a| a.vision_cached).count() as u64;
    let vision_encoded = answers.len() as u64 - vision_reused;
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
        model_wait_ms: Some(model_wait_ms),
        image_bytes: Some(n_bytes),
        caption_length: Some(caption_length),
        vision_encoded,
        vision_reused,
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

async fn infer(
    st: &Arc<AppState>,
    req: Request,
    route: Route,
    bodies: Bodies,
) -> Result<Response, ApiError> {
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
    if bodies == Bodies::RawImage && kind != BodyKind::RawImage {
        return Err(ApiError::unsupported_media_type(format!(
            "{} takes the image file as the body (Content-Type: image/jpeg, image/png, \
             image/webp or image/bmp); JSON and forms go to {}",
            parts.uri.path(),
            parts.uri.path().trim_end_matches("/raw")
        )));
    }
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
    let mut params = fields.params(task, config)?;
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
        model_wait_ms: Some(answer.model_wait_ms),
        image_bytes: Some(n_bytes),
        caption_length: Some(answer.text.chars().count()),
        vision_encoded: u64::from(!answer.vision_cached),
        vision_reused: u64::from(answer.vision_cached),
    });
    Ok(resp)
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
    fn reading_body(&self) -> Option<crate::http::peer::ReadingBody> {
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
        Ok(Ok(Err(e))) => Err(job_error(e, id, workers.kind().has_device())),
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

/// The answer to a job the pipeline could not run; `hailo` says whether
/// the pipelines run on the Hailo device (an unavailable pipeline is then
/// the device's fault). The detail goes to the log, not to the client; the
/// answer to each kind of failure is `ApiError::for_kind`'s.
fn job_error(e: JobError, request_id: &str, hailo: bool) -> ApiError {
    match e {
        JobError::Failed { kind, message } => {
            match kind {
                ErrorKind::InferenceFailed => {
                    tracing::error!(request_id, detail = %message, "inference failed");
                }
                ErrorKind::DeviceBusy => {
                    tracing::warn!(request_id, detail = %message, "Hailo device busy");
                }
                ErrorKind::Device => {
                    tracing::error!(request_id, detail = %message, "Hailo device failed");
                }
                // The request's own fault (the client is told why), its
                // deadline, or a client that went away: nothing to log.
                ErrorKind::InvalidRequest | ErrorKind::TimedOut | ErrorKind::Cancelled => {}
            }
            ApiError::for_kind(kind, message)
        }
        JobError::ShuttingDown => ApiError::not_ready("the service is shutting down"),
        JobError::Unavailable(detail) => {
            tracing::error!(request_id, detail = %detail, "pipeline unavailable");
            if hailo {
                ApiError::device_error()
            } else {
                ApiError::not_ready("the model is not available")
            }
        }
    }
}
