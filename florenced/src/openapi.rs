//! The OpenAPI 3.1 document served at /openapi.json.

use gstflorence::engine::task::Task;
use serde_json::{Value, json};

use crate::config::Config;

fn error_responses(codes: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for c in codes {
        out.insert(
            (*c).to_owned(),
            json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        );
    }
    Value::Object(out)
}

fn inference_op(summary: &str, request: &str, response: &str) -> Value {
    let mut responses = error_responses(&[
        "400", "401", "413", "422", "429", "500", "501", "503", "504",
    ]);
    responses["200"] = json!({
        "description": "result",
        "headers": {
            "x-queue-time": {"schema": {"type": "integer"}, "description": "ms waiting for the model"},
            "x-inference-time": {"schema": {"type": "integer"}, "description": "ms of model time"},
            "x-request-id": {"schema": {"type": "string"}}
        },
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{response}")}}}
    });
    json!({
        "summary": summary,
        "requestBody": {
            "required": true,
            "content": {
                "application/json": {"schema": {"$ref": format!("#/components/schemas/{request}")}},
                "multipart/form-data": {"schema": {"type": "object", "properties": {
                    "image": {"type": "string", "format": "binary"},
                    "file": {"type": "string", "format": "binary"}
                }}},
                "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                "image/png": {"schema": {"type": "string", "format": "binary"}},
                "image/webp": {"schema": {"type": "string", "format": "binary"}}
            }
        },
        "responses": responses
    })
}

pub fn document(config: &Config) -> Value {
    let params = json!({
        "image": {"type": "string", "description": "data URI (data:image/jpeg;base64,...) or bare base64 of a JPEG, PNG, WebP or BMP image"},
        "max_length": {"type": "integer", "minimum": 1, "maximum": config.max_tokens, "default": config.max_length, "description": "maximum new tokens"},
        "min_length": {"type": "integer", "minimum": 0, "default": config.min_length},
        "temperature": {"type": "number", "minimum": 0.0, "maximum": 2.0, "default": config.temperature, "description": "0: deterministic; > 0: sampling"},
        "num_beams": {"type": "integer", "minimum": 1, "maximum": 8},
        "seed": {"type": "integer", "minimum": 0, "description": "makes sampling reproducible"}
    });
    let with = |extra: Value, required: &[&str]| {
        let mut p = params.clone();
        if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        json!({"type": "object", "required": required, "properties": p})
    };
    let common_out = json!({
        "inference_time_ms": {"type": "integer"},
        "model": {"type": "string", "const": "florence-2"},
        "token_count": {"type": "integer"},
        "model_variant": {"type": "string"},
        "backend": {"type": "string", "enum": ["onnx-cpu", "hailo"]},
        "task": {"type": "string"},
        "image_size": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
        "queue_time_ms": {"type": "number"}
    });
    let out = |name: &str, schema: Value| {
        let mut p = common_out.clone();
        if let Some(p) = p.as_object_mut() {
            p.insert(name.to_owned(), schema);
        }
        json!({"type": "object", "properties": p})
    };
    let task_names: Vec<&str> = Task::ALL.iter().map(|t| t.name()).collect();
    let mut task_op = inference_op("Run any Florence-2 task", "TaskRequest", "TaskResponse");
    task_op["parameters"] = json!([{"name": "task", "in": "path", "required": true, "schema": {"type": "string", "enum": task_names}}]);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "florenced",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Florence-2 captioning, VQA and vision tasks; drop-in for hailo-florence"
        },
        "paths": {
            "/v1/caption": {"post": inference_op("Caption an image", "CaptionRequest", "CaptionResponse")},
            "/v1/vqa": {"post": inference_op("Answer a question about an image", "VqaRequest", "VqaResponse")},
            "/v1/tasks/{task}": {"post": task_op},
            "/health": {"get": {"summary": "Service health", "responses": {
                "200": {"description": "healthy", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}},
                "503": {"description": "loading, failed or shutting down", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}}
            }}},
            "/metrics": {"get": {"summary": "Metrics: JSON, or Prometheus text for Accept: text/plain or ?format=prometheus",
                "parameters": [{"name": "format", "in": "query", "schema": {"type": "string", "enum": ["json", "prometheus"]}}],
                "responses": {"200": {"description": "metrics", "content": {
                    "application/json": {"schema": {"type": "object"}},
                    "text/plain": {"schema": {"type": "string"}}
                }}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI document"}}}}
        },
        "components": {"schemas": {
            "CaptionRequest": with(json!({"task": {"type": "string", "enum": ["caption", "detailed_caption", "more_detailed_caption"], "default": "caption"}}), &["image"]),
            "VqaRequest": with(json!({"question": {"type": "string", "minLength": 1, "maxLength": 1024}}), &["image", "question"]),
            "TaskRequest": with(json!({
                "text": {"type": "string", "description": "input of grounding / segmentation / open-vocabulary tasks"},
                "region": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4, "description": "[x1, y1, x2, y2] in image pixels, for region_to_* tasks"}
            }), &["image"]),
            "CaptionResponse": out("caption", json!({"type": "string"})),
            "VqaResponse": out("answer", json!({"type": "string"})),
            "TaskResponse": out("result", json!({"type": "object", "description": "post_process_generation's result keyed by the task token"})),
            "Health": {"type": "object", "properties": {
                "status": {"type": "string", "enum": ["healthy", "unhealthy", "degraded"]},
                "model_loaded": {"type": "boolean"},
                "uptime_seconds": {"type": "integer"},
                "version": {"type": "string"},
                "hailo_device": {"type": "string", "enum": ["connected", "disconnected", "not_used"]},
                "error": {"type": "string"}
            }},
            "Error": {"type": "object", "required": ["error", "message", "status"], "properties": {
                "error": {"type": "string", "enum": ["invalid_image_format", "image_too_large", "invalid_parameters", "unauthorized", "rate_limited", "inference_failed", "vqa_not_configured", "model_not_ready", "device_error", "overloaded", "timeout", "not_found", "method_not_allowed"]},
                "message": {"type": "string"},
                "status": {"type": "integer"}
            }}
        }}
    })
}
