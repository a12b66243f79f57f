//! What a reload (SIGHUP) changes: which configuration keys take effect at
//! once, which need new pipelines (the model is loaded again next to the old
//! one), and which only a restart can change (those keep their old value).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::config::Config;

/// Read for every request: a reload changes them for the next request.
const LIVE_KEYS: &[&str] = &[
    "max_image_bytes",
    "limits",
    "shutdown_timeout_s",
    "max_length",
    "min_length",
    "temperature",
    "num_beams",
    "max_tokens",
    "api_key",
    "api_key_protects_health",
    "rate_limit",
    "slow_inference_ms",
    "exit_on_load_failure",
];

/// Settings of the pipelines: a change loads the model into new pipelines.
/// (`request_timeout_s` is also read per request.)
const PIPELINE_KEYS: &[&str] = &[
    "model_dir",
    "model_variant",
    "backend",
    "hailo",
    "threads",
    "execution_provider",
    "image_size",
    "max_concurrent_requests",
    "decode_slowdown",
    "queue_depth",
    "request_timeout_s",
    "warmup",
    "vqa_prompt_template",
];

// Every other key (host, port, ort_library: one ONNX Runtime per process,
// log_format, log_level, metrics, and any key added later until it is listed
// above) is read once at start-up: a reload keeps its old value and says so.

/// The outcome of comparing the running configuration with the one just read.
#[derive(Debug)]
pub struct Plan {
    /// The configuration to apply: the new one, restart-only keys kept as they were.
    pub config: Config,
    /// Keys whose new value takes effect.
    pub changed: Vec<String>,
    /// Keys that changed but need a restart (their old value is kept).
    pub need_restart: Vec<String>,
    /// Whether pipeline settings changed (the model is loaded again).
    pub pipelines_changed: bool,
}

/// Compares `old` with `new` key by key (top-level keys of the YAML).
pub fn plan(old: &Config, new: Config) -> Result<Plan, String> {
    let as_map = |c: &Config| match serde_json::to_value(c) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => Err("the configuration is not a mapping".to_owned()),
        Err(e) => Err(format!("cannot compare configurations: {e}")),
    };
    let before = as_map(old)?;
    let mut after = as_map(&new)?;
    let mut changed = Vec::new();
    let mut need_restart = Vec::new();
    for (key, value) in &before {
        if after.get(key) == Some(value) {
            continue;
        }
        if LIVE_KEYS.contains(&key.as_str()) || PIPELINE_KEYS.contains(&key.as_str()) {
            changed.push(key.clone());
        } else {
            need_restart.push(key.clone());
            after.insert(key.clone(), value.clone());
        }
    }
    let pipelines_changed = changed.iter().any(|k| PIPELINE_KEYS.contains(&k.as_str()));
    let config = if need_restart.is_empty() {
        new
    } else {
        serde_json::from_value(serde_json::Value::Object(after))
            .map_err(|e| format!("cannot keep the restart-only keys: {e}"))?
    };
    Ok(Plan {
        config,
        changed,
        need_restart,
        pipelines_changed,
    })
}

/// What the model directory held (name, size, modification time of every
/// file), so a reload notices a model replaced in place; or why it cannot be read.
pub type ModelFiles = Result<Vec<(PathBuf, u64, Option<SystemTime>)>, String>;

pub fn model_files(dir: Option<&Path>) -> ModelFiles {
    let Some(dir) = dir else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let mut pending = vec![(dir.to_path_buf(), 0)];
    while let Some((d, depth)) = pending.pop() {
        let entries =
            std::fs::read_dir(&d).map_err(|e| format!("cannot read {}: {e}", d.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot read {}: {e}", d.display()))?;
            let path = entry.path();
            // Follows symbolic links: a model directory may link its graphs.
            let Ok(meta) = std::fs::metadata(&path) else {
                out.push((path, 0, None));
                continue;
            };
            if meta.is_dir() {
                // The onnx-community layout is two levels deep; a deeper tree is not a model's.
                if depth < 2 {
                    pending.push((path, depth + 1));
                }
            } else {
                out.push((path, meta.len(), meta.modified().ok()));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_pipeline_and_restart_keys() {
        let old = Config::default();
        let mut new = old.clone();
        new.api_key = Some("k".into());
        new.port = 9;
        new.log_level = "debug".into();
        let p = plan(&old, new.clone()).unwrap();
        assert_eq!(p.changed, ["api_key"]);
        assert_eq!(p.need_restart, ["log_level", "port"]);
        assert!(!p.pipelines_changed);
        assert_eq!(p.config.api_key.as_deref(), Some("k"));
        assert_eq!(
            (p.config.port, p.config.log_level.as_str()),
            (11438, "info")
        );

        new.model_variant = "_fp16".into();
        let p = plan(&old, new).unwrap();
        assert!(p.pipelines_changed);
        assert_eq!(p.config.model_variant, "_fp16");

        let p = plan(&old, old.clone()).unwrap();
        assert!(p.changed.is_empty() && p.need_restart.is_empty());
        assert_eq!(p.config, old);
    }

    /// A key is classified once: live and pipeline keys are distinct and exist.
    #[test]
    fn key_lists_name_configuration_keys() {
        let keys = match serde_json::to_value(Config::default()).unwrap() {
            serde_json::Value::Object(m) => m,
            _ => unreachable!(),
        };
        for k in LIVE_KEYS.iter().chain(PIPELINE_KEYS) {
            assert!(keys.contains_key(*k), "{k} is not a configuration key");
        }
        assert!(!LIVE_KEYS.iter().any(|k| PIPELINE_KEYS.contains(k)));
    }

    #[test]
    fn model_files_notice_a_change_and_a_missing_directory() {
        let scratch = florence_test_support::scratch::Scratch::new("files");
        let dir = scratch.path().join("model");
        std::fs::create_dir_all(dir.join("onnx")).unwrap();
        std::fs::write(dir.join("config.json"), "{}").unwrap();
        std::fs::write(dir.join("onnx/a.onnx"), "1").unwrap();
        let first = model_files(Some(&dir));
        assert_eq!(first.as_ref().unwrap().len(), 2);
        assert_eq!(model_files(Some(&dir)), first);
        std::fs::write(dir.join("onnx/a.onnx"), "12").unwrap();
        assert_ne!(model_files(Some(&dir)), first);
        std::fs::remove_dir_all(&dir).unwrap();
        let gone = model_files(Some(&dir)).unwrap_err();
        assert!(gone.contains(&dir.display().to_string()), "{gone}");
        assert_eq!(model_files(None), Ok(Vec::new()));
    }
}
