//! The types of the HTTP API as the OpenAPI document shows them. Responses are
//! built from these types (so the document cannot drift from what is sent);
//! requests are read by the one strict parser of request.rs, and these types
//! describe its fields for each body kind (JSON, multipart form, query string).
//!
//! Bounds that come from the configuration (`max_length`'s maximum and
//! default) are placeholders here and set at run time by `openapi::document`.

use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use crate::http::error::ErrorCode;

/// Declares a request type with the generation parameters every inference
/// route takes after its own fields, for JSON/form bodies (`#[schema]`).
/// In JSON, null is the same as absent (`nullable = true`); a form has no null.
macro_rules! with_generation {
    (nullable = $null:literal; $(#[$m:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $(#[$m])*
        #[allow(dead_code)]
        pub struct $name {
            $($body)*
            /// Maximum number of new tokens (at most the configured `max_tokens`).
            #[schema(minimum = 1, maximum = 200, default = 100, nullable = $null, example = 100)]
            pub max_length: Option<u32>,
            /// Minimum number of new tokens; at most `max_length`.
            #[schema(minimum = 0, maximum = 200, default = 0, nullable = $null)]
            pub min_length: Option<u32>,
            /// 0 or absent: deterministic decoding; above 0: sampling at this temperature.
            #[schema(minimum = 0.0, maximum = 2.0, default = 0.0, nullable = $null)]
            pub temperature: Option<f64>,
            /// Beam width (default: the model's generation_config.json).
            #[schema(minimum = 1, maximum = 8, nullable = $null)]
            pub num_beams: Option<u32>,
            /// Makes sampling reproducible (any unsigned 64-bit integer).
            #[schema(minimum = 0, maximum = 18446744073709551615_u64, nullable = $null)]
            pub seed: Option<u64>,
        }
    };
}

/// The same generation parameters as query parameters, for the `/raw`
/// operations (a JSON or multipart body carries its fields itself).
macro_rules! with_generation_query {
    ($(#[$m:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $(#[$m])*
        #[derive(IntoParams)]
        #[into_params(parameter_in = Query)]
        #[allow(dead_code)]
        pub struct $name {
            $($body)*
            /// Maximum number of new tokens (at most the configured `max_tokens`).
            #[param(minimum = 1, maximum = 200, nullable = false)]
            pub max_length: Option<u32>,
            /// Minimum number of new tokens; at most `max_length`.
            #[param(minimum = 0, maximum = 200, nullable = false)]
            pub min_length: Option<u32>,
            /// 0 or absent: deterministic decoding; above 0: sampling.
            #[param(minimum = 0.0, maximum = 2.0, nullable = false)]
            pub temperature: Option<f64>,
            /// Beam width (default: the model's generation_config.json).
            #[param(minimum = 1, maximum = 8, nullable = false)]
            pub num_beams: Option<u32>,
            /// Makes sampling reproducible.
            #[param(minimum = 0, maximum = 18446744073709551615_u64, nullable = false)]
            pub seed: Option<u64>,
        }
    };
}

const PNG_1X1: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGNoaGgAAAMEAYFL09IQAAAAAElFTkSuQmCC";

/// Which caption a caption request asks for.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum CaptionTask {
    Caption,
    DetailedCaption,
    MoreDetailedCaption,
}

with_generation! {
    nullable = true;
    /// A caption request (JSON).
    #[derive(ToSchema)]
    #[schema(example = json!({"image": PNG_1X1, "max_length": 20}))]
    pub struct CaptionRequest {
        #[schema(min_length = 1, example = json!(PNG_1X1))]
        #[doc = "The image as a data URI or bare base64 of a JPEG, PNG, WebP or BMP file (at most max_image_bytes decoded)."]
        pub image: String,
        /// Which caption (default `caption`).
        #[schema(inline, nullable)]
        pub task: Option<CaptionTask>,
    }
}

with_generation! {
    nullable = false;
    /// A caption request (multipart/form-data): the image file and the parameters as text parts.
    #[derive(ToSchema)]
    pub struct CaptionForm {
        /// The image file (a part named `file` is taken as well).
        #[schema(value_type = String, format = Binary)]
        pub image: Vec<u8>,
        /// Which caption (default `caption`).
        #[schema(inline, nullable = false)]
        pub task: Option<CaptionTask>,
    }
}

with_generation_query! {
    /// Parameters of a caption request with a raw image body.
    pub struct CaptionQuery {
        /// Which caption (default `caption`).
        #[param(inline, nullable = false)]
        pub task: Option<CaptionTask>,
    }
}

with_generation! {
    nullable = true;
    /// A question about an image (JSON).
    #[derive(ToSchema)]
    #[schema(example = json!({"image": PNG_1X1, "question": "What color is the car?"}))]
    pub struct VqaRequest {
        #[schema(min_length = 1, example = json!(PNG_1X1))]
        #[doc = "The image as a data URI or bare base64 of a JPEG, PNG, WebP or BMP file (at most max_image_bytes decoded)."]
        pub image: String,
        /// The question: not blank, at most 1024 characters, and its tokens must
        /// fit the model's text positions with the image's (422 names the limit).
        #[schema(min_length = 1, max_length = 1024, pattern = r"[^\s]", example = "What color is the car?")]
        pub question: String,
    }
}

with_generation! {
    nullable = false;
    /// A question about an image (multipart/form-data).
    #[derive(ToSchema)]
    pub struct VqaForm {
        /// The image file (a part named `file` is taken as well).
        #[schema(value_type = String, format = Binary)]
        pub image: Vec<u8>,
        /// The question: not blank, at most 1024 characters.
        #[schema(min_length = 1, max_length = 1024, pattern = r"[^\s]")]
        pub question: String,
    }
}

with_generation_query! {
    /// Parameters of a question with a raw image body.
    pub struct VqaQuery {
        /// The question: not blank, at most 1024 characters.
        #[param(min_length = 1, max_length = 1024, pattern = r"[^\s]")]
        pub question: String,
    }
}

with_generation! {
    nullable = true;
    /// A task request (JSON). Region tasks take `region` or loc `text`; text tasks take `text`.
    #[derive(ToSchema)]
    #[schema(example = json!({"image": PNG_1X1}))]
    pub struct TaskRequest {
        #[schema(min_length = 1, example = json!(PNG_1X1))]
        #[doc = "The image as a data URI or bare base64 of a JPEG, PNG, WebP or BMP file (at most max_image_bytes decoded)."]
        pub image: String,
        /// Text tasks (grounding, segmentation, open-vocabulary detection, vqa): the
        /// phrase, at most 1024 characters. Region tasks: the region in Florence-2's
        /// notation `<loc_x1><loc_y1><loc_x2><loc_y2>` (bins 0-999) instead of `region`.
        #[schema(min_length = 1, max_length = 1024, nullable)]
        pub text: Option<String>,
        /// Region tasks: `[x1, y1, x2, y2]` in image pixels, inside the image.
        #[schema(min_items = 4, max_items = 4, nullable)]
        pub region: Option<Vec<f64>>,
    }
}

with_generation! {
    nullable = false;
    /// A task request (multipart/form-data); `region` is four repeated parts.
    #[derive(ToSchema)]
    pub struct TaskForm {
        /// The image file (a part named `file` is taken as well).
        #[schema(value_type = String, format = Binary)]
        pub image: Vec<u8>,
        /// As in the JSON request.
        #[schema(min_length = 1, max_length = 1024, nullable = false)]
        pub text: Option<String>,
        /// Region tasks: x1, y1, x2, y2 in image pixels.
        #[schema(min_items = 4, max_items = 4, nullable = false)]
        pub region: Option<Vec<f64>>,
    }
}

with_generation_query! {
    /// Parameters of a task request with a raw image body; `region` is four repeated values.
    pub struct TaskQuery {
        /// As in the JSON request.
        #[param(min_length = 1, max_length = 1024, nullable = false)]
        pub text: Option<String>,
        /// Region tasks: x1, y1, x2, y2 in image pixels.
        #[param(min_items = 4, max_items = 4, nullable = false)]
        pub region: Option<Vec<f64>>,
    }
}

/// The fields of every inference answer.
macro_rules! inference_response {
    ($(#[$m:meta])* pub struct $name:ident { $($body:tt)* }) => {
        #[derive(Debug, Serialize, ToSchema)]
        $(#[$m])*
        pub struct $name {
            $($body)*
            /// Milliseconds of model time.
            pub inference_time_ms: u64,
            /// Always `florence-2` (compatibility with hailo-florence).
            #[schema(value_type = String, pattern = "^florence-2$", example = "florence-2")]
            pub model: &'static str,
            /// Tokens generated.
            pub token_count: u64,
            /// e.g. `Florence-2-base-ft`.
            pub model_variant: String,
            #[schema(value_type = Backend)]
            pub backend: String,
            /// The task token, e.g. `<CAPTION>`.
            pub task: String,
            /// `[width, height]` of the image as decoded.
            pub image_size: [u32; 2],
            /// Milliseconds spent waiting for the model.
            #[schema(minimum = 0.0)]
            pub queue_time_ms: f64,
        }
    };
}

/// Which backend runs the model.
#[derive(ToSchema)]
#[schema(rename_all = "kebab-case")]
#[allow(dead_code)]
pub enum Backend {
    OnnxCpu,
    Hailo,
}

inference_response! {
    /// A caption.
    #[schema(example = json!({"caption": "A green car parked in front of a yellow building.",
        "inference_time_ms": 782, "model": "florence-2", "token_count": 12,
        "model_variant": "Florence-2-base-ft", "backend": "onnx-cpu", "task": "<CAPTION>",
        "image_size": [640, 480], "queue_time_ms": 0.1}))]
    pub struct CaptionResponse {
        pub caption: String,
    }
}

inference_response! {
    /// An answer to a question.
    #[schema(example = json!({"answer": "A phone", "inference_time_ms": 820, "model": "florence-2",
        "token_count": 2, "model_variant": "Florence-2-base-ft", "backend": "onnx-cpu",
        "task": "<VQA>", "image_size": [640, 480], "queue_time_ms": 0.1}))]
    pub struct VqaResponse {
        pub answer: String,
    }
}

inference_response! {
    /// A task's answer: the generated text and the structured result.
    #[schema(example = json!({"text": "car<loc_52><loc_332><loc_932><loc_774>",
        "result": {"<OD>": {"bboxes": [[33.6, 159.6, 596.8, 371.8]], "labels": ["car"]}},
        "inference_time_ms": 900, "model": "florence-2", "token_count": 7,
        "model_variant": "Florence-2-base-ft", "backend": "onnx-cpu", "task": "<OD>",
        "image_size": [640, 480], "queue_time_ms": 0.1}))]
    pub struct TaskResponse {
        /// The generated text after post-processing's text step.
        pub text: String,
        /// post_process_generation's result keyed by the task token (labels, `bboxes`
        /// in image pixels, `quad_boxes`, `polygons`, or text).
        #[schema(value_type = Object)]
        pub result: serde_json::Value,
    }
}

/// The status of the service.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // `degraded` is the contract's; this daemon has no such state yet.
pub enum HealthStatus {
    Healthy,
    Unhealthy,
    Degraded,
}

/// The accelerator's state (`not_used` on the ONNX backend).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HailoDevice {
    Connected,
    Disconnected,
    NotUsed,
}

/// /health's answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"status": "healthy", "model_loaded": true, "uptime_seconds": 3600,
    "version": "0.1.0", "hailo_device": "not_used", "backend": "onnx-cpu",
    "execution_provider": "CPUExecutionProvider", "model_variant": "Florence-2-base-ft", "queue_depth": 0, "cpu_temperature_c": 48.3}))]
pub struct Health {
    pub status: HealthStatus,
    pub model_loaded: bool,
    pub uptime_seconds: u64,
    /// florenced's version.
    pub version: &'static str,
    pub hailo_device: HailoDevice,
    #[schema(value_type = Backend)]
    pub backend: &'static str,
    /// Why captions run on that backend (backend=auto's choice and its cause);
    /// absent until a model is loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub backend_reason: Option<String>,
    /// ONNX Runtime's name of the execution provider the model's ONNX graphs
    /// run on (`CPUExecutionProvider`, or the configured `execution_provider`);
    /// absent until a model is loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub execution_provider: Option<String>,
    /// The loaded model's variant; null until a model is loaded.
    pub model_variant: Option<String>,
    /// Requests waiting for the model.
    pub queue_depth: usize,
    /// Where the platform exposes it (thermal zone 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub cpu_temperature_c: Option<f64>,
    /// Why the service is not healthy (only when it is not).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub error: Option<String>,
    /// Why the last reload (SIGHUP) failed; the service goes on with what it had.
    /// Absent when the last reload succeeded or there was none.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub reload_error: Option<String>,
}

/// Every error, on every route.
#[derive(ToSchema)]
#[schema(example = json!({"error": "invalid_image_format", "message": "image is not valid base64", "status": 400}))]
#[allow(dead_code)]
pub struct Error {
    pub error: ErrorCode,
    /// Human readable, without internals.
    pub message: String,
    /// The HTTP status again.
    pub status: u16,
}

/// A raw image body (JPEG, PNG, WebP or BMP file), at most max_image_bytes.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct RawImage(Vec<u8>);

/// The compatible JSON metrics (hailo-florence's fields; more may follow).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct MetricsSummary {
    /// Requests to /v1 routes.
    pub requests_total: u64,
    pub requests_succeeded: u64,
    pub requests_failed: u64,
    pub average_inference_time_ms: f64,
    pub p50_inference_time_ms: f64,
    pub p95_inference_time_ms: f64,
    pub p99_inference_time_ms: f64,
    pub memory_usage_mb: u64,
    pub model_cache_hit_rate: f64,
    pub uptime_seconds: u64,
}

/// The rendering of /metrics.
#[derive(ToSchema, Debug, Clone, Copy, PartialEq, Eq)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum MetricsFormat {
    Json,
    Prometheus,
}

/// /metrics' query.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct MetricsQuery {
    /// Forces a rendering (otherwise chosen from Accept).
    #[param(inline, nullable = false)]
    pub format: Option<MetricsFormat>,
}

/// One task of an analyze request, with the input its task takes: none,
/// `text` (text tasks), or `region` or loc `text` (region tasks).
#[derive(ToSchema)]
#[schema(example = json!({"task": "od"}))]
#[allow(dead_code)]
pub struct AnalyzeTask {
    /// The task's name (`od`, `caption`, ...) or token (`<OD>`).
    #[schema(example = "od")]
    pub task: String,
    /// The task's text input, or a region task's `<loc_x1><loc_y1><loc_x2><loc_y2>`.
    #[schema(min_length = 1, max_length = 1024, nullable)]
    pub text: Option<String>,
    /// Region tasks: `[x1, y1, x2, y2]` in image pixels, inside the image.
    #[schema(min_items = 4, max_items = 4, nullable)]
    pub region: Option<Vec<f64>>,
}

with_generation! {
    nullable = true;
    /// Several tasks on one image (JSON): the image is decoded and run through the
    /// vision encoder once; the generation parameters apply to every task.
    #[derive(ToSchema)]
    #[schema(example = json!({"image": PNG_1X1, "tasks": [{"task": "caption"}, {"task": "od"}]}))]
    pub struct AnalyzeRequest {
        #[schema(min_length = 1, example = json!(PNG_1X1))]
        #[doc = "The image as a data URI or bare base64 of a JPEG, PNG, WebP or BMP file (at most max_image_bytes decoded)."]
        pub image: String,
        /// The tasks, in the order they run and are answered (1 to 16).
        #[schema(min_items = 1, max_items = 16)]
        pub tasks: Vec<AnalyzeTask>,
    }
}

/// One task's answer in an analyze response.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnalyzeResult {
    /// The task token, e.g. `<OD>`.
    pub task: String,
    /// The generated text after post-processing's text step.
    pub text: String,
    /// post_process_generation's result keyed by the task token.
    #[schema(value_type = Object)]
    pub result: serde_json::Value,
    /// Tokens generated.
    pub token_count: u64,
    /// Milliseconds of model time for this task.
    pub inference_time_ms: u64,
    /// Whether this task reused the image's vision features (every task after
    /// the first; also a task whose image another request on this model had
    /// just encoded or was encoding).
    pub vision_cached: bool,
}

/// The answers of an analyze request, in the request's order.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnalyzeResponse {
    pub results: Vec<AnalyzeResult>,
    /// Milliseconds of model time over all tasks.
    pub inference_time_ms: u64,
    /// Always `florence-2` (compatibility with hailo-florence).
    #[schema(value_type = String, pattern = "^florence-2$", example = "florence-2")]
    pub model: &'static str,
    /// e.g. `Florence-2-base-ft`.
    pub model_variant: String,
    #[schema(value_type = Backend)]
    pub backend: String,
    /// `[width, height]` of the image as decoded.
    pub image_size: [u32; 2],
    /// Milliseconds the request waited for the model.
    #[schema(minimum = 0.0)]
    pub queue_time_ms: f64,
}
