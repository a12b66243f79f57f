//! The daemon's configuration: a YAML file, overridden by `FLORENCED_*`
//! environment variables, overridden by command-line flags.
//!
//! Every layer is merged into one JSON tree before it is read, so an unknown key
//! or a bad value anywhere stops start-up with a message naming the key.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where the Python hailo-florence service keeps its configuration.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/hailo/hailo-florence.yaml";
/// Environment variables with this prefix override configuration keys;
/// nested keys join with `__` (`FLORENCED_LIMITS__MAX_WIDTH`).
pub const ENV_PREFIX: &str = "FLORENCED_";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    Auto,
    Onnx,
    Hailo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON when stderr is not a terminal (journald), text on a terminal.
    Auto,
    Json,
    Text,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_width: u32,
    pub max_height: u32,
    pub max_megapixels: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_width: 8192,
            max_height: 8192,
            max_megapixels: 40.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per minute per client address.
    pub requests_per_minute: u32,
    /// Requests a client may make at once before the rate applies.
    #[serde(default = "default_burst")]
    pub burst: u32,
}

fn default_burst() -> u32 {
    10
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Metrics {
    /// Window of the latency percentiles, in seconds.
    pub retention_seconds: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            retention_seconds: 3600,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub model_dir: Option<PathBuf>,
    /// Graph file suffix (`_quantized`, `_fp16`, ...); empty for fp32.
    pub model_variant: String,
    pub backend: BackendChoice,
    /// libonnxruntime.so; unset: ORT_DYLIB_PATH, the project folder, the system path.
    pub ort_library: Option<PathBuf>,
    /// ONNX Runtime intra-op threads per graph; 0 = physical cores.
    pub threads: u32,
    /// Largest request body and largest encoded image, in bytes.
    pub max_image_bytes: usize,
    pub limits: Limits,
    /// Requests waiting beyond the running ones; more get 503 overloaded.
    pub queue_depth: usize,
    /// Inferences running at once (each one loads its own copy of the model).
    pub max_concurrent_requests: usize,
    pub request_timeout_s: f64,
    /// How long SIGTERM waits for in-flight and queued requests.
    pub shutdown_timeout_s: f64,
    /// Defaults of the request parameters.
    pub max_length: u32,
    pub min_length: u32,
    pub temperature: f32,
    /// None: the model's generation_config.json (3 beams for Florence-2).
    pub num_beams: Option<u32>,
    /// Upper bound of max_length a request may ask for.
    pub max_tokens: u32,
    /// VQA prompt with a `{question}` placeholder; None: the model's.
    pub vqa_prompt_template: Option<String>,
    /// When set, /v1 routes need `X-API-Key` or `Authorization: Bearer`.
    pub api_key: Option<String>,
    /// Whether /health and /metrics need the API key too.
    pub api_key_protects_health: bool,
    pub rate_limit: Option<RateLimit>,
    pub log_format: LogFormat,
    /// tracing filter directive (`info`, `florenced=debug`, ...).
    pub log_level: String,
    /// Requests slower than this are logged as warnings.
    pub slow_inference_ms: f64,
    pub metrics: Metrics,
    /// A model that fails to load exits the process (systemd restarts it);
    /// false keeps serving /health as unhealthy with the reason.
    pub exit_on_load_failure: bool,
    /// Run one short inference per pipeline before reporting ready, so the first
    /// request does not pay ONNX Runtime's first-run cost.
    pub warmup: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "127.0.0.1".into(),
            port: 11438,
            model_dir: None,
            model_variant: String::new(),
            backend: BackendChoice::Auto,
            ort_library: None,
            threads: 0,
            max_image_bytes: 10 * 1024 * 1024,
            limits: Limits::default(),
            queue_depth: 8,
            max_concurrent_requests: 1,
            request_timeout_s: 60.0,
            shutdown_timeout_s: 30.0,
            max_length: 100,
            min_length: 0,
            temperature: 0.0,
            num_beams: None,
            max_tokens: 200,
            vqa_prompt_template: None,
            api_key: None,
            api_key_protects_health: false,
            rate_limit: None,
            log_format: LogFormat::Auto,
            log_level: "info".into(),
            slow_inference_ms: 1500.0,
            metrics: Metrics::default(),
            exit_on_load_failure: true,
            warmup: true,
        }
    }
}

/// Keys whose values stay strings when given through the environment or `--set`
/// (so an API key of digits is not read as a number).
const STRING_KEYS: &[&str] = &[
    "host",
    "model_dir",
    "model_variant",
    "backend",
    "ort_library",
    "vqa_prompt_template",
    "api_key",
    "log_format",
    "log_level",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{source_name}: {message}")]
    Syntax {
        source_name: String,
        message: String,
    },
    #[error("configuration key `{key}` ({source_name}): {message}")]
    Key {
        key: String,
        source_name: String,
        message: String,
    },
}

/// One override: a dotted key and its raw text, with where it came from.
#[derive(Debug, Clone)]
pub struct Override {
    pub key: String,
    pub value: String,
    pub source_name: String,
}

impl Override {
    /// Parses `key=value` as given to `--set`.
    pub fn parse_set(arg: &str) -> Result<Override, ConfigError> {
        let (key, value) = arg.split_once('=').ok_or_else(|| ConfigError::Syntax {
            source_name: "--set".into(),
            message: format!("{arg:?} is not key=value"),
        })?;
        Ok(Override {
            key: key.trim().to_owned(),
            value: value.to_owned(),
            source_name: "--set".into(),
        })
    }
}

/// Overrides from `FLORENCED_*` environment variables.
pub fn env_overrides(vars: impl IntoIterator<Item = (String, String)>) -> Vec<Override> {
    let mut out: Vec<Override> = vars
        .into_iter()
        .filter_map(|(name, value)| {
            let key = name.strip_prefix(ENV_PREFIX)?;
            Some(Override {
                key: key.to_ascii_lowercase().replace("__", "."),
                value,
                source_name: format!("environment variable {name}"),
            })
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

impl Config {
    /// Reads the file (if any), then applies the overrides in order.
    /// `path` None reads the default path when it exists.
    pub fn load(path: Option<&Path>, overrides: &[Override]) -> Result<Config, ConfigError> {
        let (tree, source_name) = match path {
            Some(p) => (read_yaml(p)?, p.display().to_string()),
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => (
                read_yaml(Path::new(DEFAULT_CONFIG_PATH))?,
                DEFAULT_CONFIG_PATH.to_owned(),
            ),
            None => (Value::Object(Default::default()), "defaults".to_owned()),
        };
        let mut tree = match tree {
            Value::Null => Value::Object(Default::default()),
            v @ Value::Object(_) => v,
            _ => {
                return Err(ConfigError::Syntax {
                    source_name,
                    message: "the configuration must be a mapping of keys to values".into(),
                });
            }
        };
        // Remember which layer set each key, to name it in errors.
        let mut origin: Vec<(String, String)> = Vec::new();
        for o in overrides {
            set_path(&mut tree, o)?;
            origin.push((o.key.clone(), o.source_name.clone()));
        }
        let config: Config = serde_path_to_error::deserialize(tree).map_err(
            |e: serde_path_to_error::Error<_>| {
                let key = e.path().to_string();
                let source_name = origin
                    .iter()
                    .rev()
                    .find(|(k, _)| *k == key)
                    .map_or(source_name.clone(), |(_, s)| s.clone());
                ConfigError::Key {
                    key: if key == "." {
                        "(top level)".into()
                    } else {
                        key
                    },
                    source_name,
                    message: e.into_inner().to_string(),
                }
            },
        )?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| ConfigError::Key {
            key: key.into(),
            source_name: "value check".into(),
            message,
        };
        if self.max_concurrent_requests == 0 || self.max_concurrent_requests > 16 {
            return Err(bad(
                "max_concurrent_requests",
                format!("must be 1..=16, got {}", self.max_concurrent_requests),
            ));
        }
        if self.queue_depth > 10_000 {
            return Err(bad("queue_depth", "must be at most 10000".into()));
        }
        for (key, v) in [
            ("request_timeout_s", self.request_timeout_s),
            ("shutdown_timeout_s", self.shutdown_timeout_s),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= 86_400.0) {
                return Err(bad(
                    key,
                    format!("must be a number of seconds > 0, got {v}"),
                ));
            }
        }
        if self.max_image_bytes < 1024 {
            return Err(bad("max_image_bytes", "must be at least 1024".into()));
        }
        if self.limits.max_width == 0
            || self.limits.max_height == 0
            || self.limits.max_megapixels.is_nan()
            || self.limits.max_megapixels <= 0.0
        {
            return Err(bad(
                "limits",
                "width, height and megapixels must be > 0".into(),
            ));
        }
        if self.max_tokens == 0 || self.max_tokens > 4096 {
            return Err(bad(
                "max_tokens",
                format!("must be 1..=4096, got {}", self.max_tokens),
            ));
        }
        if self.max_length == 0 || self.max_length > self.max_tokens {
            return Err(bad(
                "max_length",
                format!(
                    "must be 1..=max_tokens ({}), got {}",
                    self.max_tokens, self.max_length
                ),
            ));
        }
        if self.min_length > self.max_length {
            return Err(bad(
                "min_length",
                format!("must not exceed max_length ({})", self.max_length),
            ));
        }
        if !(0.0..=2.0).contains(&self.temperature) {
            return Err(bad("temperature", "must be 0.0..=2.0".into()));
        }
        if let Some(b) = self.num_beams
            && !(1..=8).contains(&b)
        {
            return Err(bad("num_beams", format!("must be 1..=8, got {b}")));
        }
        if let Some(t) = &self.vqa_prompt_template
            && !t.contains("{question}")
        {
            return Err(bad(
                "vqa_prompt_template",
                "must contain the {question} placeholder".into(),
            ));
        }
        if self.api_key.as_deref().is_some_and(|k| k.trim().is_empty()) {
            return Err(bad(
                "api_key",
                "is empty; remove the key to turn authentication off".into(),
            ));
        }
        if let Some(r) = &self.rate_limit
            && (r.requests_per_minute == 0 || r.burst == 0)
        {
            return Err(bad(
                "rate_limit",
                "requests_per_minute and burst must be > 0".into(),
            ));
        }
        if self.metrics.retention_seconds == 0 {
            return Err(bad("metrics.retention_seconds", "must be > 0".into()));
        }
        self.log_level
            .parse::<tracing_subscriber::EnvFilter>()
            .map_err(|e| bad("log_level", e.to_string()))?;
        Ok(())
    }

    /// The effective configuration as YAML, with secrets redacted.
    pub fn redacted_yaml(&self) -> String {
        let mut c = self.clone();
        if c.api_key.is_some() {
            c.api_key = Some("<redacted>".into());
        }
        serde_yaml_ng::to_string(&c).unwrap_or_default()
    }
}

fn read_yaml(path: &Path) -> Result<Value, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    serde_yaml_ng::from_str::<Value>(&text).map_err(|e| ConfigError::Syntax {
        source_name: path.display().to_string(),
        message: e.to_string(),
    })
}

fn set_path(tree: &mut Value, o: &Override) -> Result<(), ConfigError> {
    let err = |message: String| ConfigError::Key {
        key: o.key.clone(),
        source_name: o.source_name.clone(),
        message,
    };
    let parts: Vec<&str> = o.key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(err("is not a configuration key".into()));
    }
    let value = if STRING_KEYS.contains(&o.key.as_str()) {
        Value::String(o.value.clone())
    } else {
        serde_yaml_ng::from_str::<Value>(&o.value)
            .map_err(|e| err(format!("cannot parse {:?}: {e}", o.value)))?
    };
    let mut node = tree;
    for (i, part) in parts.iter().enumerate() {
        let Value::Object(map) = node else {
            return Err(err(format!("{} is not a mapping", parts[..i].join("."))));
        };
        if i + 1 == parts.len() {
            map.insert((*part).to_owned(), value);
            return Ok(());
        }
        node = map
            .entry((*part).to_owned())
            .or_insert_with(|| Value::Object(Default::default()));
        if node.is_null() {
            *node = Value::Object(Default::default());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ov(key: &str, value: &str) -> Override {
        Override {
            key: key.into(),
            value: value.into(),
            source_name: "test".into(),
        }
    }

    fn write(text: &str) -> tempfile_path::TempPath {
        tempfile_path::TempPath::new(text)
    }

    mod tempfile_path {
        pub struct TempPath(pub std::path::PathBuf);
        impl TempPath {
            pub fn new(text: &str) -> Self {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "florenced-config-{}-{}.yaml",
                    std::process::id(),
                    N.fetch_add(1, Ordering::SeqCst)
                ));
                std::fs::write(&p, text).unwrap();
                TempPath(p)
            }
        }
        impl Drop for TempPath {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn layers_apply_in_order() {
        let f = write("port: 9000\nlimits:\n  max_width: 4096\nqueue_depth: 3\n");
        let env = env_overrides([
            ("FLORENCED_PORT".to_string(), "9100".to_string()),
            ("FLORENCED_API_KEY".to_string(), "12345".to_string()),
            (
                "FLORENCED_LIMITS__MAX_HEIGHT".to_string(),
                "100".to_string(),
            ),
            ("HOME".to_string(), "/root".to_string()),
        ]);
        let mut all = env.clone();
        all.push(ov("port", "9200"));
        let c = Config::load(Some(&f.0), &all).unwrap();
        assert_eq!(c.port, 9200);
        assert_eq!(c.queue_depth, 3);
        assert_eq!(c.limits.max_width, 4096);
        assert_eq!(c.limits.max_height, 100);
        assert_eq!(c.api_key.as_deref(), Some("12345"));
        let c = Config::load(Some(&f.0), &env).unwrap();
        assert_eq!(c.port, 9100);
        assert!(!c.redacted_yaml().contains("12345"));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let f = write("port: 9000\nqeue_depth: 3\n");
        let e = Config::load(Some(&f.0), &[]).unwrap_err().to_string();
        assert!(e.contains("qeue_depth"), "{e}");
        let f = write("limits:\n  max_width: wide\n");
        let e = Config::load(Some(&f.0), &[]).unwrap_err().to_string();
        assert!(e.contains("limits.max_width"), "{e}");
        let e = Config::load(None, &[ov("port", "70000")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`port`"), "{e}");
        let e = Config::load(
            None,
            &env_overrides([("FLORENCED_BOGUS".into(), "1".into())]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("bogus") && e.contains("FLORENCED_BOGUS"), "{e}");
        let e = Config::load(None, &[ov("max_length", "500")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_length"), "{e}");
        let e = Config::load(None, &[ov("backend", "gpu")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("backend"), "{e}");
        let e = Config::load(Some(Path::new("/nonexistent/florenced.yaml")), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/florenced.yaml"), "{e}");
    }
}
