//! The OpenAPI document is the API: what it says matches what the daemon does
//! (checked by schemathesis against the real daemon), a client generated from
//! it works without edits, and /docs shows it from files in the binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::scratch::Scratch;
use common::*;
use serde_json::{Value, json};

/// A tool installed by scripts/setup.sh into .test-venv/.
fn venv_tool(name: &str) -> PathBuf {
    let p = root().join(".test-venv/bin").join(name);
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup.sh (it installs the pinned Python test tools)",
        p.display()
    );
    p
}

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            out.push((path.clone(), method.clone(), op.clone()));
        }
    }
    out
}

#[test]
fn the_document_describes_every_route_from_the_code_and_the_config() {
    let d = Spawn::new()
        .set("max_tokens=150")
        .set("max_length=40")
        .ready();
    let doc = d.get("/openapi.json").json();
    assert_eq!(doc["openapi"], "3.1.0");

    // Every operation has an operationId, unique.
    let ops = operations(&doc);
    let mut ids: Vec<&str> = ops
        .iter()
        .map(|(p, m, op)| {
            op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{m} {p} has no operationId"))
        })
        .collect();
    ids.sort();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n, "duplicate operationIds: {ids:?}");
    for path in [
        "/v1/caption",
        "/v1/vqa",
        "/v1/tasks/od",
        "/v1/tasks/region_to_category",
        "/v1/tasks/caption_to_phrase_grounding",
        "/health",
        "/metrics",
        "/openapi.json",
        "/docs",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }

    // The configured bounds, in every place max_length appears.
    let schemas = &doc["components"]["schemas"];
    let caption = &schemas["CaptionRequest"]["properties"];
    assert_eq!(caption["max_length"]["maximum"], 150);
    assert_eq!(caption["max_length"]["default"], 40);
    assert_eq!(caption["min_length"]["maximum"], 150);
    let query = doc["paths"]["/v1/caption/raw"]["post"]["parameters"]
        .as_array()
        .unwrap();
    let q_max = query.iter().find(|p| p["name"] == "max_length").unwrap();
    assert_eq!(q_max["in"], "query");
    assert_eq!(q_max["schema"]["maximum"], 150);

    // Every request content type the server accepts, with every field: JSON
    // and forms carry every field in the body (no query parameter); a raw
    // image body is its own operation, its fields in the query.
    let content = |path: &str| -> Vec<String> {
        let mut media: Vec<String> = doc["paths"][path]["post"]["requestBody"]["content"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        media.sort();
        media
    };
    for path in [
        "/v1/caption",
        "/v1/vqa",
        "/v1/tasks/od",
        "/v1/tasks/region_to_category",
    ] {
        assert_eq!(
            content(path),
            ["application/json", "multipart/form-data"],
            "{path}"
        );
        // No query parameter; the request id header, as on every route.
        let params = doc["paths"][path]["post"]["parameters"].as_array().unwrap();
        assert!(
            params
                .iter()
                .all(|p| p["in"] == "header" && p["name"] == "x-request-id"),
            "{path}: {params:?}"
        );
        assert_eq!(
            content(&format!("{path}/raw")),
            ["image/bmp", "image/jpeg", "image/png", "image/webp"],
            "{path}/raw"
        );
    }
    // The raw operations' query holds exactly the task's input, required.
    let required_inputs = |path: &str| -> Vec<(String, bool)> {
        doc["paths"][path]["post"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| ["question", "text", "region"].contains(&p["name"].as_str().unwrap()))
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_owned(),
                    p["required"] == true,
                )
            })
            .collect()
    };
    assert_eq!(
        required_inputs("/v1/vqa/raw"),
        [("question".to_owned(), true)]
    );
    assert_eq!(
        required_inputs("/v1/tasks/caption_to_phrase_grounding/raw"),
        [("text".to_owned(), true)]
    );
    assert_eq!(
        required_inputs("/v1/tasks/region_to_category/raw"),
        [("region".to_owned(), true)]
    );
    assert!(required_inputs("/v1/tasks/od/raw").is_empty());
    assert_eq!(
        doc["paths"]["/v1/tasks/od/raw"]["post"]["operationId"],
        "task_od_raw"
    );
    let form = &schemas["VqaForm"];
    assert_eq!(form["properties"]["image"]["format"], "binary");
    assert!(form["properties"]["question"].is_object());
    assert!(
        form["required"]
            .as_array()
            .unwrap()
            .contains(&json!("question"))
    );
    assert!(query.iter().any(|p| p["name"] == "task"));

    // Tasks: each takes exactly its input.
    let od = &doc["paths"]["/v1/tasks/od"]["post"];
    assert_eq!(od["operationId"], "task_od");
    let od_body = od["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap();
    // An input the task does not take may only be absent (or null in JSON).
    let od_props = &schemas[od_body.rsplit('/').next().unwrap()]["properties"];
    assert_eq!(od_props["text"]["type"], "null");
    assert_eq!(od_props["region"]["type"], "null");
    assert_eq!(
        schemas["TextTaskRequest"]["properties"]["region"]["type"],
        "null"
    );
    let region = &schemas["RegionTaskRequest"];
    assert!(region["properties"]["region"].is_object());
    assert!(
        region["properties"]["text"]["description"]
            .as_str()
            .unwrap()
            .contains("<loc_x1>")
    );
    assert!(
        schemas["TextTaskRequest"]["required"]
            .as_array()
            .unwrap()
            .contains(&json!("text"))
    );

    // Errors: the Error shape per status, Retry-After where the server sends it.
    let responses = &doc["paths"]["/v1/caption"]["post"]["responses"];
    for status in [
        "400", "401", "403", "408", "413", "415", "421", "422", "429", "500", "501", "503", "504",
    ] {
        let schema = &responses[status]["content"]["application/json"]["schema"]["$ref"];
        assert_eq!(schema, "#/components/schemas/Error", "{status}");
    }
    for status in ["429", "503"] {
        assert!(responses[status]["headers"]["Retry-After"].is_object());
    }
    let ok_headers = &responses["200"]["headers"];
    for h in ["x-queue-time", "x-inference-time", "x-request-id"] {
        assert!(ok_headers[h].is_object(), "{h} not documented");
    }
    let error = &schemas["Error"];
    for f in ["error", "message", "status"] {
        assert!(error["required"].as_array().unwrap().contains(&json!(f)));
    }

    // Security: both schemes, optional while no key is configured.
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["api_key"]["name"], "X-API-Key");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    let security = doc["paths"]["/v1/caption"]["post"]["security"]
        .as_array()
        .unwrap();
    assert!(security.contains(&json!({})), "{security:?}");
    assert!(doc["paths"]["/health"]["get"]["security"].is_null());

    // /health: every field the daemon sends is in the schema.
    let health = d.get("/health").json();
    let health_schema = &schemas["Health"]["properties"];
    for (k, _) in health.as_object().unwrap() {
        assert!(
            health_schema[k].is_object(),
            "/health field {k} undocumented"
        );
    }
    for k in [
        "status",
        "model_loaded",
        "uptime_seconds",
        "version",
        "hailo_device",
        "backend",
        "model_variant",
        "queue_depth",
        "cpu_temperature_c",
        "error",
    ] {
        assert!(health_schema[k].is_object(), "{k} missing from Health");
    }
    let metrics = &doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"];
    assert!(metrics["application/json"].is_object() && metrics["text/plain"].is_object());

    // With a key configured, the key is required.
    let keyed = Spawn::new().set("api_key=s3cret").ready();
    let doc = request(
        keyed.addr,
        "GET",
        "/openapi.json",
        &[("x-api-key", "s3cret")],
        b"",
    )
    .json();
    let security = doc["paths"]["/v1/vqa"]["post"]["security"]
        .as_array()
        .unwrap();
    assert_eq!(
        security,
        &vec![json!({"api_key": []}), json!({"bearer": []})]
    );
}

/// The `src` and `href` values of an HTML page.
fn references(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let end = rest.find('"').unwrap();
            out.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    out
}

#[test]
fn docs_is_an_interactive_page_served_from_the_binary() {
    let d = Spawn::new().ready();
    let r = d.get("/docs");
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/docs/"));
    let page = d.get("/docs/");
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text();
    let refs = references(&html);
    assert!(
        refs.iter().any(|r| r.ends_with(".js")) && refs.iter().any(|r| r.ends_with(".css")),
        "{refs:?}"
    );
    for r in &refs {
        assert!(
            !r.starts_with("http://") && !r.starts_with("https://") && !r.starts_with("//"),
            "/docs/ loads {r} from elsewhere"
        );
        let path = format!("/docs/{}", r.trim_start_matches("./"));
        let asset = d.get(&path);
        assert_eq!(asset.status, 200, "{path}");
        assert!(!asset.body.is_empty(), "{path}");
    }
    // The initializer points the page at this daemon's document, without the
    // outside validator service.
    let init = d.get("/docs/swagger-initializer.js").text();
    assert!(init.contains("/openapi.json"), "{init}");
    assert!(!init.contains("validator.swagger.io"), "{init}");
    assert!(init.contains("\"validatorUrl\":\"none\"") || init.contains("validatorUrl"));
}

#[test]
fn schemathesis_finds_no_failure_against_the_real_daemon() {
    let d = Spawn::new().ready();
    let scratch = Scratch::new("schemathesis");
    let work = scratch.path();
    let image = root().join("tests/fixtures/images/scene_300x200.png");
    let python = root().join("florenced/tests/python");
    // Every check; examples bounded per operation; one client, as the daemon
    // runs one inference at a time; a response may take up to the daemon's
    // request timeout (30 s), the bound the service itself documents. The
    // suppressed health checks are about generation speed (inference is slow
    // next to a data generator), not about responses.
    let out = Command::new(venv_tool("st"))
        .arg("--config-file")
        .arg(python.join("schemathesis.toml"))
        .args([
            "run",
            &format!("http://{}/openapi.json", d.addr),
            "--checks",
            "all",
            "--max-examples",
            "5",
            "--seed",
            "1",
            "--workers",
            "1",
            "--request-timeout",
            "60",
            "--max-response-time",
            "30",
            "--suppress-health-check",
            "all",
            "--generation-database",
            "none",
        ])
        .current_dir(work)
        .env("PYTHONPATH", &python)
        .env("SCHEMATHESIS_HOOKS", "schemathesis_hooks")
        .env("FLORENCED_TEST_IMAGE", &image)
        .env("FLORENCED_TEST_IMAGE_SIZE", "300x200")
        .env("FLORENCED_DEFAULT_MAX_LENGTH", "100")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis failed:\n{stdout}\n{stderr}"
    );
    // It really tested every operation: "Selected: N/N" and "Tested: N".
    let number_after = |label: &str| -> Option<String> {
        let rest = &stdout[stdout.find(label)? + label.len()..];
        Some(
            rest.trim_start()
                .chars()
                .take_while(char::is_ascii_digit)
                .collect(),
        )
    };
    let tested = number_after("Tested:").unwrap_or_default();
    assert!(
        !tested.is_empty() && stdout.contains(&format!("Selected: {tested}/{tested}")),
        "not every operation was tested:\n{stdout}"
    );
}

/// Runs Python with the generated client on its path; returns its stdout as JSON.
fn run_client(dir: &Path, script: &str, addr: std::net::SocketAddr, image: &Path) -> Value {
    let out = Command::new(venv_tool("python"))
        .arg(root().join("florenced/tests/python").join(script))
        .arg(format!("http://{addr}"))
        .arg(image)
        .env("PYTHONPATH", dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_client_generated_from_the_document_captions_answers_and_detects() {
    let d = Spawn::new().ready();
    let scratch = Scratch::new("client");
    let work = scratch.path();
    let doc_path = work.join("openapi.json");
    std::fs::write(&doc_path, d.get("/openapi.json").body).unwrap();
    let out = Command::new(venv_tool("openapi-python-client"))
        .arg("generate")
        .arg("--path")
        .arg(&doc_path)
        .arg("--output-path")
        .arg(work.join("client"))
        .arg("--meta")
        .arg("none")
        .current_dir(work)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openapi-python-client failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // --meta none writes the package itself; put it on the path under its name.
    let pkg = work.join("pkg");
    std::fs::create_dir_all(&pkg).unwrap();
    std::fs::rename(work.join("client"), pkg.join("florenced_client")).unwrap();

    let image = root().join("tests/fixtures/images/scene_300x200.png");
    let got = run_client(&pkg, "generated_client.py", d.addr, &image);

    // The same requests, plain.
    let png = std::fs::read(&image).unwrap();
    let plain = |path: &str, extra: Value| {
        let mut body = json!({"image": b64(&png), "max_length": 20});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let r = d.post_json(path, &body);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };
    assert_eq!(got["caption"], plain("/v1/caption", json!({}))["caption"]);
    assert_eq!(
        got["answer"],
        plain("/v1/vqa", json!({"question": "what is this?"}))["answer"]
    );
    assert_eq!(got["od"], plain("/v1/tasks/od", json!({}))["result"]);
    assert_eq!(got["caption_multipart"], got["caption"]);
}
