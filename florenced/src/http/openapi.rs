//! The OpenAPI 3.1 document served at /openapi.json, derived from the
//! handlers' `#[utoipa::path]` attributes and the types of schema.rs, then
//! completed in one place (`document`) with what only the running daemon
//! knows: the configured token bounds, whether an API key is required, and one
//! operation per Florence-2 task (each with the inputs that task takes).

use gstflorence::engine::task::{InputKind, Task};
use serde_json::{Value, json};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::config::Config;
use crate::http::error::ErrorCode;
use crate::http::schema;
use crate::http::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "florenced",
        description = "Florence-2 captioning, visual question answering and vision tasks; \
            a drop-in replacement for hailo-florence. Every error has the `Error` shape. \
            Inference routes take a JSON or a multipart/form-data body with every field in it; \
            their `/raw` twins take the image file as the body (image/jpeg, image/png, \
            image/webp, image/bmp) with the fields in the query string.",
    ),
    paths(
        crate::http::inference::caption,
        crate::http::inference::caption_raw,
        crate::http::inference::vqa,
        crate::http::inference::vqa_raw,
        crate::http::inference::task,
        crate::http::inference::task_raw,
        crate::http::inference::analyze,
        crate::http::service::health,
        crate::http::service::metrics,
        serve_document,
        crate::http::docs::docs_page,
        crate::http::page::page,
    ),
    components(schemas(schema::Error, ErrorCode)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "inference", description = "Run the model on an image"),
        (name = "service", description = "Health, metrics and this document"),
    )
)]
struct ApiDoc;

/// The two ways to present the API key (`api_key` in the configuration).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "The configured api_key (only checked when one is configured)",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "Authorization: Bearer <api_key> (only checked when one is configured)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The paths the task handlers are documented at (a body with its fields, and
/// a raw image body with its fields in the query), each expanded into one path per task.
const TASK_PATHS: [(&str, &str); 2] = [("/v1/tasks/{task}", ""), ("/v1/tasks/{task}/raw", "/raw")];

/// The document for this configuration.
pub fn document(config: &Config) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|_| json!({}));
    expand_tasks(&mut doc);
    analyze_task_schema(&mut doc);
    form_part_names(&mut doc);
    bodies_required(&mut doc);
    inference_errors(&mut doc);
    answer_headers(&mut doc);
    request_id_header(&mut doc);
    apply_config(&mut doc, config);
    doc
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "service",
    summary = "This document",
    responses((status = 200, description = "The OpenAPI document", body = Object))
)]
pub(crate) async fn serve_document(State(st): State<Arc<AppState>>) -> Response {
    axum::Json(document(&st.config())).into_response()
}

/// An analyze task item: one schema per input kind, each listing its tasks (by
/// name or token) and exactly the inputs they take, so that a valid item is one
/// the service runs.
fn analyze_task_schema(doc: &mut Value) {
    let names = |kind: InputKind| -> Vec<&str> {
        Task::ALL
            .iter()
            .filter(|t| t.input() == kind)
            .flat_map(|t| [t.name(), t.token()])
            .collect()
    };
    let text = json!({"type": "string", "minLength": 1, "maxLength": 1024, "pattern": NOT_BLANK});
    let loc = json!({"type": "string", "pattern": LOC_REGION});
    let region =
        json!({"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4});
    let schema = json!({
        "description": "One task with the input it takes: none, `text` (text tasks), or `region` \
            (pixels) or `text` (<loc_> notation) for region tasks.",
        "oneOf": [
            {"type": "object", "title": "NoInputTask", "required": ["task"], "additionalProperties": false,
             "properties": {"task": {"type": "string", "enum": names(InputKind::None)}},
             "example": {"task": "od"}},
            {"type": "object", "title": "TextTask", "required": ["task", "text"], "additionalProperties": false,
             "properties": {"task": {"type": "string", "enum": names(InputKind::Text)}, "text": text},
             "example": {"task": "caption_to_phrase_grounding", "text": "a green car"}},
            {"type": "object", "title": "RegionTask", "required": ["task"], "additionalProperties": false,
             "properties": {"task": {"type": "string", "enum": names(InputKind::Region)},
                            "region": region, "text": loc},
             "oneOf": [{"required": ["region"]}, {"required": ["text"]}],
             "example": {"task": "region_to_category", "region": [0, 0, 1, 1]}}
        ]
    });
    if let Some(item) = doc.pointer_mut("/components/schemas/AnalyzeTask") {
        *item = schema;
    }
}

/// Visits every schema object below `v` (components, request bodies, parameters).
fn each_object(v: &mut Value, f: &mut impl FnMut(&mut serde_json::Map<String, Value>)) {
    match v {
        Value::Object(o) => {
            f(o);
            for (_, child) in o.iter_mut() {
                each_object(child, f);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|c| each_object(c, f)),
        _ => {}
    }
}

/// Token bounds and defaults from the configuration; security from whether a key is set.
fn apply_config(doc: &mut Value, config: &Config) {
    each_object(doc, &mut |o| {
        let Some(Value::Object(props)) = o.get_mut("properties") else {
            // A query parameter: {"name": ..., "schema": {...}}.
            let name = o.get("name").and_then(Value::as_str).map(str::to_owned);
            if let (Some(name), Some(Value::Object(s))) = (name, o.get_mut("schema")) {
                bound(&name, s, config);
            }
            return;
        };
        for (name, p) in props.iter_mut() {
            if let Value::Object(s) = p {
                bound(name, s, config);
            }
        }
    });
    fn bound(name: &str, s: &mut serde_json::Map<String, Value>, config: &Config) {
        match name {
            "max_length" => {
                s.insert("maximum".into(), config.max_tokens.into());
                if s.contains_key("default") {
                    s.insert("default".into(), config.max_length.into());
                }
                if s.contains_key("example") {
                    s.insert("example".into(), config.max_length.min(20).into());
                }
            }
            "min_length" => {
                s.insert("maximum".into(), config.max_tokens.into());
                if s.contains_key("default") {
                    s.insert("default".into(), config.min_length.into());
                }
            }
            // Any u64: a 64-bit format would tell generators the signed range.
            "seed" => {
                s.remove("format");
            }
            _ => {}
        }
    }
    // Without a configured key the API is open: an empty requirement makes the schemes optional.
    let protect_health = config.api_key.is_some() && config.api_key_protects_health;
    let open = config.api_key.is_none();
    if let Some(Value::Object(paths)) = doc.get_mut("paths") {
        for (path, item) in paths.iter_mut() {
            let Value::Object(item) = item else { continue };
            for (_, op) in item.iter_mut() {
                let Some(op) = op.as_object_mut() else {
                    continue;
                };
                let inference = path.starts_with("/v1/");
                let health = path == "/health" || path == "/metrics";
                if inference || (health && protect_health) {
                    let mut reqs = vec![json!({"api_key": []}), json!({"bearer": []})];
                    if open {
                        reqs.push(json!({}));
                    }
                    op.insert("security".into(), Value::Array(reqs));
                } else {
                    op.remove("security");
                }
            }
        }
    }
}

/// The errors of the inference routes, by status, from the codes and their
/// statuses (`ErrorCode`): every code but the routing ones.
fn inference_errors(doc: &mut Value) {
    let mut by_status: std::collections::BTreeMap<u16, Vec<ErrorCode>> = Default::default();
    for code in ErrorCode::ANSWERED {
        if !matches!(code, ErrorCode::NotFound | ErrorCode::MethodNotAllowed) {
            by_status
                .entry(code.status().as_u16())
                .or_default()
                .push(code);
        }
    }
    let responses: Vec<(String, Value)> = by_status
        .into_iter()
        .map(|(status, codes)| {
            let description = codes
                .iter()
                .map(|c| format!("`{}`: {}", c.as_str(), c.meaning()))
                .collect::<Vec<_>>()
                .join("; ");
            let mut response = json!({
                "description": description,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
            });
            if codes.iter().any(|c| c.retries()) {
                response["headers"] = json!({"Retry-After": {
                    "description": "Seconds to wait before retrying",
                    "schema": {"type": "integer", "format": "int64", "minimum": 0}
                }});
            }
            (status.to_string(), response)
        })
        .collect();
    if let Some(Value::Object(paths)) = doc.get_mut("paths") {
        for (path, item) in paths.iter_mut() {
            if !path.starts_with("/v1/") {
                continue;
            }
            if let Some(Value::Object(answers)) = item.pointer_mut("/post/responses") {
                for (status, response) in &responses {
                    answers.insert(status.clone(), response.clone());
                }
            }
        }
    }
}

/// The headers of every inference answer (set by `inference::respond`).
fn answer_headers(doc: &mut Value) {
    let header =
        |schema: Value, description: &str| json!({"description": description, "schema": schema});
    let integer = json!({"type": "integer", "format": "int64", "minimum": 0});
    let headers = json!({
        "x-queue-time": header(integer.clone(), "Milliseconds the request waited for the model"),
        "x-inference-time": header(integer, "Milliseconds of model time (over all tasks for /v1/analyze)"),
        "x-request-id": header(json!({"type": "string"}), "The request's id (the client's X-Request-Id if valid), also in the log"),
    });
    if let Some(Value::Object(paths)) = doc.get_mut("paths") {
        for (path, item) in paths.iter_mut() {
            if !path.starts_with("/v1/") {
                continue;
            }
            if let Some(Value::Object(ok)) = item.pointer_mut("/post/responses/200") {
                ok.insert("headers".into(), headers.clone());
            }
        }
    }
}

/// Every inference request has a body (its image).
fn bodies_required(doc: &mut Value) {
    if let Some(Value::Object(paths)) = doc.get_mut("paths") {
        for (_, item) in paths.iter_mut() {
            if let Some(Value::Object(body)) = item.pointer_mut("/post/requestBody") {
                body.insert("required".into(), true.into());
            }
        }
    }
}

/// Every route takes the client's request id (the `observe` middleware): any
/// value is taken, and one that is not 1 to 64 of `A-Za-z0-9-_.:` is replaced
/// by the daemon's own. (Also what makes openapi-python-client 0.29.1 import
/// `Unset` for an operation with two body types: its issue #1451.)
fn request_id_header(doc: &mut Value) {
    let param = json!({
        "name": "x-request-id",
        "in": "header",
        "required": false,
        "description": "An id for this request in the daemon's log and in the answer's \
            x-request-id: used as given when it is 1 to 64 of A-Z a-z 0-9 - _ . :, \
            otherwise the daemon makes one.",
        "schema": {"type": "string"}
    });
    if let Some(Value::Object(paths)) = doc.get_mut("paths") {
        for (_, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (_, op) in item.iter_mut() {
                if let Some(op) = op.as_object_mut() {
                    let params = op.entry("parameters").or_insert_with(|| json!([]));
                    if let Value::Array(params) = params {
                        params.push(param.clone());
                    }
                }
            }
        }
    }
}

/// Other parts of a form are ignored, but a part's name must fit in its
/// header: control characters (other than tab) make the body unparseable.
fn form_part_names(doc: &mut Value) {
    if let Some(Value::Object(schemas)) = doc["components"].get_mut("schemas") {
        for (name, schema) in schemas.iter_mut() {
            if name.ends_with("Form") {
                schema["propertyNames"] = json!({"pattern": "^[^\\x00-\\x08\\x0a-\\x1f\\x7f]*$"});
            }
        }
    }
}

/// Replaces the generic task path with one operation per task, each taking
/// exactly the input its task needs (so a client knows which fields to send),
/// with request schemas derived from the generic ones for each input kind.
fn expand_tasks(doc: &mut Value) {
    for generic in ["TaskRequest", "TaskForm"] {
        let Some(base) = doc["components"]["schemas"].get(generic).cloned() else {
            continue;
        };
        for kind in [InputKind::None, InputKind::Text, InputKind::Region] {
            let (name, schema) = kind_schema(generic, &base, kind);
            doc["components"]["schemas"][name] = schema;
        }
    }
    let Some(Value::Object(paths)) = doc.get_mut("paths") else {
        return;
    };
    for (path, suffix) in TASK_PATHS {
        let Some(generic) = paths.remove(path) else {
            continue;
        };
        for task in Task::ALL {
            let mut item = generic.clone();
            if let Some(Value::Object(op)) = item.get_mut("post") {
                specialise(op, task, suffix);
            }
            paths.insert(format!("/v1/tasks/{}{suffix}", task.name()), item);
        }
    }
}

/// Text that is not blank (a phrase of spaces is refused).
const NOT_BLANK: &str = r"[^\s]";
/// Florence-2's region notation: four location bins 0-999.
const LOC_REGION: &str = "^(<loc_([0-9]|[1-9][0-9]|[1-9][0-9][0-9])>){4}$";

fn kind_name(generic: &str, kind: InputKind) -> String {
    match kind {
        InputKind::None => generic.to_owned(),
        InputKind::Text => format!("Text{generic}"),
        InputKind::Region => format!("Region{generic}"),
    }
}

/// The schema of a task body for tasks of one input kind.
fn kind_schema(generic: &str, base: &Value, kind: InputKind) -> (String, Value) {
    let mut s = base.clone();
    let form = generic.ends_with("Form");
    let required = |s: &mut Value, field: &str| {
        if let Some(Value::Array(r)) = s.get_mut("required") {
            r.push(field.into());
        }
    };
    if let Some(Value::Object(props)) = s.get_mut("properties") {
        match kind {
            InputKind::None => {
                props.remove("text");
                props.remove("region");
            }
            InputKind::Text => {
                props.remove("region");
                // Required, so never null.
                props["text"]["type"] = "string".into();
                props["text"]["pattern"] = NOT_BLANK.into();
                props["text"]["description"] =
                    "The phrase or question: not blank, at most 1024 characters.".into();
            }
            // A form gives the region as four `region` parts: the <loc_> text
            // form, which the service takes there too, is left out, as no form
            // schema can say "one of the two" to every client (schemathesis'
            // coverage phase, for one, builds forms from the properties alone).
            InputKind::Region if form => {
                props.remove("text");
            }
            InputKind::Region => {
                // In JSON, null is the same as absent.
                props["text"] = json!({
                    "type": ["string", "null"],
                    "pattern": LOC_REGION,
                    "description": "The region in Florence-2's notation <loc_x1><loc_y1><loc_x2><loc_y2> \
                        (bins 0-999 of the image's width and height), instead of `region`."
                });
            }
        }
    }
    // An input the task does not take is refused, not ignored like unknown
    // fields: in JSON it may only be null (absent). (A form schema cannot say
    // so to schemathesis 4.32.5: a `not` beside a binary part crashes its
    // coverage phase; the form's part is refused all the same.)
    let refused: &[&str] = match kind {
        InputKind::None => &["text", "region"],
        InputKind::Text => &["region"],
        InputKind::Region => &[],
    };
    if !form && let Some(Value::Object(props)) = s.get_mut("properties") {
        for f in refused {
            props.insert(
                (*f).into(),
                json!({"type": "null", "description": "Not an input of this task: absent or null."}),
            );
        }
    }
    match kind {
        InputKind::None => {
            s["description"] = "A task that takes no input besides the image.".into();
        }
        InputKind::Text => {
            required(&mut s, "text");
            s["description"] = "A task that takes a text input.".into();
        }
        InputKind::Region if form => {
            required(&mut s, "region");
            s["description"] = "A task that takes a region: `region` (pixels).".into();
        }
        InputKind::Region => {
            // Exactly one of the two is given (null is absent, in JSON).
            s["oneOf"] = json!([
                {"required": ["region"], "properties": {"region": {"type": "array"}}},
                {"required": ["text"], "properties": {"text": {"type": "string"}}}
            ]);
            s["description"] =
                "A task that takes a region: `region` (pixels) or `text` (<loc_> notation), not both.".into();
        }
    }
    if let Some(Value::Object(ex)) = s.get_mut("example") {
        ex.remove("text");
        ex.remove("region");
        match kind {
            InputKind::None => {}
            InputKind::Text => {
                ex.insert("text".into(), "a green car".into());
            }
            InputKind::Region => {
                ex.insert("region".into(), json!([0, 0, 1, 1]));
            }
        }
    }
    (kind_name(generic, kind), s)
}

/// One task's operation; `suffix` is "/raw" for the raw image body's.
fn specialise(op: &mut serde_json::Map<String, Value>, task: Task, suffix: &str) {
    let name = task.name();
    let kind = task.input();
    let raw = if suffix.is_empty() { "" } else { "_raw" };
    op.insert("operationId".into(), format!("task_{name}{raw}").into());
    op.insert(
        "summary".into(),
        format!("Run the {name} task ({})", task.token()).into(),
    );
    if let Some(Value::Array(params)) = op.get_mut("parameters") {
        // The path parameter is now part of the path.
        params.retain(|p| p["in"] != "path");
        // A raw body's query carries exactly the task's input: a text task's
        // `text`, a region task's `region` (its <loc_> `text` form is for
        // bodies, whose schema can say "one of the two").
        params.retain(|p| match kind {
            InputKind::None => p["name"] != "text" && p["name"] != "region",
            InputKind::Text => p["name"] != "region",
            InputKind::Region => p["name"] != "text",
        });
        for p in params.iter_mut() {
            if p["name"] == "text" {
                p["schema"]["pattern"] = NOT_BLANK.into();
                p["required"] = true.into();
            }
            if p["name"] == "region" {
                p["required"] = true.into();
            }
        }
    }
    if let Some(Value::Object(content)) =
        op.get_mut("requestBody").and_then(|b| b.get_mut("content"))
    {
        for (_, body) in content.iter_mut() {
            let Some(reference) = body["schema"]["$ref"].as_str().map(str::to_owned) else {
                continue; // a raw image body: the inputs are query parameters
            };
            for generic in ["TaskRequest", "TaskForm"] {
                if reference.ends_with(&format!("/{generic}")) {
                    body["schema"]["$ref"] =
                        format!("#/components/schemas/{}", kind_name(generic, kind)).into();
                }
            }
        }
    }
}
