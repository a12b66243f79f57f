//! The daemon's configuration: a YAML file, overridden by `FLORENCED_*`
//! environment variables, overridden by command-line flags.
//!
//! Every layer is merged into one JSON tree before it is read (`layers`), so an
//! unknown key or a bad value anywhere stops start-up with a message naming the
//! layer that set it and the key.

mod layers;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use layers::Layers;
pub use layers::{Override, env_overrides};

/// Where the Python hailo-florence service keeps its configuration.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/hailo/hailo-florence.yaml";

/// The variable that names the configuration file instead of `--config`; set
/// empty, no file is read (tests set it so that an installed service's file
/// never leaks into them). It is not a configuration key, so the
/// `FLORENCED_*` key overrides skip it.
pub const CONFIG_FILE_ENV: &str = "FLORENCED_CONFIG";

/// Which configuration file a load reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFile<'a> {
    /// [`DEFAULT_CONFIG_PATH`] when it exists, else none.
    Default,
    /// This file, which must exist.
    Path(&'a Path),
    /// No file: defaults and overrides only.
    None,
}

impl<'a> ConfigFile<'a> {
    /// `--config` (or else [`CONFIG_FILE_ENV`]): an empty value reads no file,
    /// none at all the default.
    pub fn from_arg(arg: Option<&'a Path>) -> ConfigFile<'a> {
        match arg {
            None => ConfigFile::Default,
            Some(p) if p.as_os_str().is_empty() => ConfigFile::None,
            Some(p) => ConfigFile::Path(p),
        }
    }
}

/// `auto | onnx | hailo`, parsed and printed by the engine.
pub use gstflorence::engine::BackendChoice;

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

impl Limits {
    /// The decoder's limits for a request image (`max_megapixels` in pixels).
    pub fn image_limits(&self) -> gstflorence::engine::image_io::ImageLimits {
        gstflorence::engine::image_io::ImageLimits {
            max_width: self.max_width,
            max_height: self.max_height,
            max_pixels: (self.max_megapixels * 1e6) as u64,
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

/// What a connection and a request body may take of the daemon: time, file
/// descriptors, memory; and who may talk to it from a browser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// A request head must be complete within this many seconds of the
    /// connection opening or of the previous response (slowloris).
    pub header_read_timeout_s: f64,
    /// A request body must be complete within this many seconds of its head
    /// (408 otherwise).
    pub body_read_timeout_s: f64,
    /// A connection without a request in progress (fresh or kept alive) is
    /// closed after this many seconds without a byte of the next request.
    pub keep_alive_timeout_s: f64,
    /// Open connections at most; lowered at start-up to the open-file limit
    /// minus room for the model, logs and the health check. At the limit the
    /// connection idle longest is closed for a new one.
    pub max_connections: usize,
    /// Bytes of request bodies being received and parsed at once; a body that
    /// does not fit gets 503 overloaded with Retry-After.
    pub body_bytes_in_flight: usize,
    /// Host names (without port) accepted besides the loopback ones. Checked when
    /// the daemon listens on loopback, or whenever the list is not empty; "*"
    /// accepts any (DNS rebinding protection off).
    pub allowed_hosts: Vec<String>,
    /// Origins a browser page may call the API from (CORS); empty: none, "*": any.
    pub cors_allow_origins: Vec<String>,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            header_read_timeout_s: 10.0,
            body_read_timeout_s: 60.0,
            keep_alive_timeout_s: 5.0,
            max_connections: 512,
            body_bytes_in_flight: 64 * 1024 * 1024,
            allowed_hosts: Vec::new(),
            cors_allow_origins: Vec::new(),
        }
    }
}

/// How the Hailo backend uses the device (ignored by the ONNX Runtime backend).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hailo {
    /// Virtual-device group: processes with the same group share a Hailo-10H;
    /// HailoRT's default `UNIQUE` (hailo-ollama's) takes the chip alone.
    pub group_id: String,
    /// HailoRT scheduler priority of the split's networks, 0..=31.
    pub scheduler_priority: u32,
    /// Bound on one network run, in milliseconds (a request's deadline bounds it further).
    pub run_timeout_ms: u32,
    /// Seconds without captions after which the device is released for other
    /// processes (hailo-ollama); 0 keeps it.
    pub idle_release_s: u32,
}

impl Default for Hailo {
    /// The engine's defaults (HailoRT's normal priority, the reference's timeout).
    fn default() -> Self {
        let d = gstflorence::engine::hailo::HailoSettings::default();
        Hailo {
            group_id: d.group_id,
            scheduler_priority: u32::from(d.scheduler_priority),
            run_timeout_ms: d.run_timeout.as_millis() as u32,
            idle_release_s: gstflorence::engine::hailo::DEFAULT_IDLE_RELEASE_S,
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
    pub hailo: Hailo,
    /// libonnxruntime.so; unset: ORT_DYLIB_PATH, the project folder, the system path.
    pub ort_library: Option<PathBuf>,
    /// ONNX Runtime threads: 0 = the process's one pool (one thread per
    /// physical core, shared by every pipeline); N = each graph its own N.
    pub threads: u32,
    /// The ONNX backend's execution provider (`cpu`, `cuda`, ... or ONNX
    /// Runtime's own name); any but cpu must be in the loaded library.
    pub execution_provider: String,
    /// Input resolution, 384 or 768; None: the model's own (768 for Florence-2).
    pub image_size: Option<u32>,
    /// Largest request body and largest encoded image, in bytes.
    pub max_image_bytes: usize,
    pub limits: Limits,
    /// Requests waiting beyond the running ones; more get 503 overloaded.
    pub queue_depth: usize,
    /// Inferences running at once, each on its own pipeline, all on one
    /// shared copy of the model (its weights loaded once).
    pub max_concurrent_requests: usize,
    /// How much slower a decoder run shared by concurrent requests may be
    /// than a request's run alone, and how long its decoding may be held for
    /// requests still encoding (at least 1; 1: never share a run).
    pub decode_slowdown: f64,
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
    pub http: Http,
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
            hailo: Hailo::default(),
            ort_library: None,
            threads: 0,
            execution_provider: "cpu".into(),
            image_size: None,
            max_image_bytes: 10 * 1024 * 1024,
            limits: Limits::default(),
            queue_depth: 8,
            max_concurrent_requests: 1,
            decode_slowdown: gstflorence::engine::DEFAULT_DECODE_SLOWDOWN,
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
            http: Http::default(),
            exit_on_load_failure: true,
            warmup: true,
        }
    }
}

/// A configuration error: every one names the layer (`config file PATH`,
/// `environment variable FLORENCED_X`, `--set key=value`, `--port`, `defaults`)
/// and, where there is one, the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{layer}: {message}")]
    Syntax { layer: String, message: String },
    #[error("{layer}: key `{key}`: {message}")]
    Key {
        layer: String,
        key: String,
        message: String,
    },
}

impl Config {
    /// Reads the file (if any), then applies the overrides in order.
    pub fn load(file: ConfigFile<'_>, overrides: &[Override]) -> Result<Config, ConfigError> {
        let file = match file {
            ConfigFile::Path(p) => Some(p),
            ConfigFile::Default => {
                let default = Path::new(DEFAULT_CONFIG_PATH);
                default.exists().then_some(default)
            }
            ConfigFile::None => None,
        };
        let (tree, layers) = Layers::merge(file, overrides)?;
        let config: Config = serde_path_to_error::deserialize(tree).map_err(
            |e: serde_path_to_error::Error<_>| {
                let key = match e.path().to_string() {
                    k if k == "." => "(top level)".to_owned(),
                    k => k,
                };
                layers.error(&key, e.into_inner().to_string())
            },
        )?;
        config.validate(&layers)?;
        Ok(config)
    }

    /// Checks the merged values; an error names the layer that set the key.
    fn validate(&self, layers: &Layers) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| layers.error(key, message);
        if self.max_concurrent_requests == 0 || self.max_concurrent_requests > 16 {
            return Err(bad(
                "max_concurrent_requests",
                format!("must be 1..=16, got {}", self.max_concurrent_requests),
            ));
        }
        // The element's property range.
        if !(1.0..=1000.0).contains(&self.decode_slowdown) {
            return Err(bad(
                "decode_slowdown",
                format!("must be 1..=1000, got {}", self.decode_slowdown),
            ));
        }
        if let Err(e) = self
            .execution_provider
            .parse::<gstflorence::engine::ExecutionProvider>()
        {
            return Err(bad("execution_provider", e.to_string()));
        }
        if let Some(size) = self.image_size
            && !gstflorence::engine::model_error::IMAGE_SIZES.contains(&size)
        {
            return Err(bad("image_size", format!("must be 384 or 768, got {size}")));
        }
        let h = &self.hailo;
        if h.group_id.trim().is_empty() || h.group_id.len() > 127 || h.group_id.contains('\0') {
            return Err(bad(
                "hailo.group_id",
                "must be 1..=127 bytes without NUL (\"SHARED\" shares the chip)".into(),
            ));
        }
        if h.scheduler_priority > 31 {
            return Err(bad(
                "hailo.scheduler_priority",
                format!("must be 0..=31, got {}", h.scheduler_priority),
            ));
        }
        if !(1..=600_000).contains(&h.run_timeout_ms) {
            return Err(bad(
                "hailo.run_timeout_ms",
                format!("must be 1..=600000, got {}", h.run_timeout_ms),
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
        for (key, v) in [
            ("limits.max_width", f64::from(self.limits.max_width)),
            ("limits.max_height", f64::from(self.limits.max_height)),
            ("limits.max_megapixels", self.limits.max_megapixels),
        ] {
            if v.is_nan() || v <= 0.0 {
                return Err(bad(key, format!("must be > 0, got {v}")));
            }
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
                    "must be 1..={}, got {}",
                    layers.describe("max_tokens", self.max_tokens),
                    self.max_length
                ),
            ));
        }
        if self.min_length > self.max_length {
            return Err(bad(
                "min_length",
                format!(
                    "{} must not exceed {}",
                    self.min_length,
                    layers.describe("max_length", self.max_length)
                ),
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
        if let Some(r) = &self.rate_limit {
            for (key, v) in [
                ("rate_limit.requests_per_minute", r.requests_per_minute),
                ("rate_limit.burst", r.burst),
            ] {
                if v == 0 {
                    return Err(bad(key, "must be > 0".into()));
                }
            }
        }
        self.validate_http(layers)?;
        if self.metrics.retention_seconds == 0 {
            return Err(bad("metrics.retention_seconds", "must be > 0".into()));
        }
        self.log_level
            .parse::<tracing_subscriber::EnvFilter>()
            .map_err(|e| bad("log_level", e.to_string()))?;
        Ok(())
    }

    fn validate_http(&self, layers: &Layers) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| layers.error(key, message);
        let h = &self.http;
        for (key, v) in [
            ("http.header_read_timeout_s", h.header_read_timeout_s),
            ("http.body_read_timeout_s", h.body_read_timeout_s),
            ("http.keep_alive_timeout_s", h.keep_alive_timeout_s),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= 86_400.0) {
                return Err(bad(
                    key,
                    format!("must be a number of seconds > 0, got {v}"),
                ));
            }
        }
        if h.max_connections < 2 {
            return Err(bad(
                "http.max_connections",
                format!("must be at least 2, got {}", h.max_connections),
            ));
        }
        let largest = crate::http::body::BodyLimits::new(self.max_image_bytes).largest();
        if h.body_bytes_in_flight < largest {
            return Err(bad(
                "http.body_bytes_in_flight",
                format!(
                    "must hold at least the largest body, {largest} bytes ({}), got {}",
                    layers.describe("max_image_bytes", self.max_image_bytes),
                    h.body_bytes_in_flight
                ),
            ));
        }
        for (key, list) in [
            ("http.allowed_hosts", &h.allowed_hosts),
            ("http.cors_allow_origins", &h.cors_allow_origins),
        ] {
            if let Some(v) = list
                .iter()
                .find(|v| v.trim().is_empty() || v.bytes().any(|b| b.is_ascii_whitespace()))
            {
                return Err(bad(key, format!("{v:?} is not a host or origin")));
            }
        }
        if let Some(o) = h.cors_allow_origins.iter().find(|o| {
            *o != "*" && (axum::http::HeaderValue::from_str(o).is_err() || o.ends_with('/'))
        }) {
            return Err(bad(
                "http.cors_allow_origins",
                format!("{o:?} is not an origin such as https://example.com"),
            ));
        }
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

    /// A configuration file in its own scratch directory: `.0` is its path.
    struct Written(
        std::path::PathBuf,
        #[allow(dead_code)] florence_test_support::scratch::Scratch,
    );

    fn write(text: &str) -> Written {
        let dir = florence_test_support::scratch::Scratch::new("config");
        Written(dir.config(text), dir)
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
        let c = Config::load(ConfigFile::Path(&f.0), &all).unwrap();
        assert_eq!(c.port, 9200);
        assert_eq!(c.queue_depth, 3);
        assert_eq!(c.limits.max_width, 4096);
        assert_eq!(c.limits.max_height, 100);
        assert_eq!(c.api_key.as_deref(), Some("12345"));
        assert_eq!(c.execution_provider, "cpu");
        let c = Config::load(
            ConfigFile::Path(&f.0),
            &[set("execution_provider=CUDAExecutionProvider")],
        )
        .unwrap();
        assert_eq!(c.execution_provider, "CUDAExecutionProvider");
        let c = Config::load(ConfigFile::Path(&f.0), &env).unwrap();
        assert_eq!(c.port, 9100);
        assert!(!c.redacted_yaml().contains("12345"));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let f = write("port: 9000\nqeue_depth: 3\n");
        let e = Config::load(ConfigFile::Path(&f.0), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("qeue_depth"), "{e}");
        let f = write("limits:\n  max_width: wide\n");
        let e = Config::load(ConfigFile::Path(&f.0), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("limits.max_width"), "{e}");
        let e = Config::load(ConfigFile::None, &[ov("port", "70000")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`port`"), "{e}");
        let e = Config::load(
            ConfigFile::None,
            &env_overrides([("FLORENCED_BOGUS".into(), "1".into())]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("bogus") && e.contains("FLORENCED_BOGUS"), "{e}");
        let e = Config::load(ConfigFile::None, &[ov("max_length", "500")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_length"), "{e}");
        let e = Config::load(ConfigFile::None, &[ov("decode_slowdown", "0.5")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("decode_slowdown") && e.contains("1..=1000"),
            "{e}"
        );
        let e = Config::load(ConfigFile::None, &[ov("backend", "gpu")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("backend"), "{e}");
        let e = load_err(None, &env(&[("FLORENCED_EXECUTION_PROVIDER", "gpu")]));
        assert!(
            e.starts_with(
                "environment variable FLORENCED_EXECUTION_PROVIDER: key `execution_provider`: \
                 unknown execution provider \"gpu\""
            ) && e.contains("cuda"),
            "{e}"
        );
        let e = Config::load(
            ConfigFile::Path(Path::new("/nonexistent/florenced.yaml")),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("/nonexistent/florenced.yaml"), "{e}");
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<Override> {
        env_overrides(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    fn set(arg: &str) -> Override {
        Override::parse_set(arg).unwrap()
    }

    fn load_err(file: Option<&Path>, overrides: &[Override]) -> String {
        let file = file.map_or(ConfigFile::None, ConfigFile::Path);
        Config::load(file, overrides).unwrap_err().to_string()
    }

    #[test]
    fn yaml_null_unsets_an_optional_string_key() {
        for v in ["null", "~", "", "NULL"] {
            let c = Config::load(
                ConfigFile::None,
                &env(&[("FLORENCED_VQA_PROMPT_TEMPLATE", v)]),
            )
            .unwrap();
            assert_eq!(c.vqa_prompt_template, None, "{v:?}");
        }
        let c = Config::load(
            ConfigFile::None,
            &[set("model_dir=null"), set("ort_library=~")],
        )
        .unwrap();
        assert_eq!((c.model_dir, c.ort_library), (None, None));
        // The file may set it; the environment unsets it again.
        let f = write("vqa_prompt_template: \"<DocVQA>{question}\"\n");
        let c = Config::load(ConfigFile::Path(&f.0), &[]).unwrap();
        assert_eq!(c.vqa_prompt_template.as_deref(), Some("<DocVQA>{question}"));
        let c = Config::load(
            ConfigFile::Path(&f.0),
            &env(&[("FLORENCED_VQA_PROMPT_TEMPLATE", "null")]),
        )
        .unwrap();
        assert_eq!(c.vqa_prompt_template, None);
        // Anything else is the string itself, whatever YAML would make of it.
        let c = Config::load(
            ConfigFile::None,
            &[set("vqa_prompt_template=[1]{question}")],
        )
        .unwrap();
        assert_eq!(c.vqa_prompt_template.as_deref(), Some("[1]{question}"));
        let c = Config::load(ConfigFile::None, &env(&[("FLORENCED_MODEL_DIR", "123")])).unwrap();
        assert_eq!(c.model_dir, Some(PathBuf::from("123")));
        let c = Config::load(ConfigFile::None, &env(&[("FLORENCED_HOST", "null")])).unwrap();
        assert_eq!(c.host, "null");
        // Neither "no authentication" nor the key "null" is a safe reading.
        let e = load_err(None, &env(&[("FLORENCED_API_KEY", "null")]));
        assert!(
            e.starts_with("environment variable FLORENCED_API_KEY: key `api_key`: "),
            "{e}"
        );
        // Other keys take YAML values; null is refused where the key is not optional.
        let c = Config::load(ConfigFile::None, &env(&[("FLORENCED_NUM_BEAMS", "null")])).unwrap();
        assert_eq!(c.num_beams, None);
        let e = load_err(None, &env(&[("FLORENCED_PORT", "null")]));
        assert!(
            e.starts_with("environment variable FLORENCED_PORT: key `port`: "),
            "{e}"
        );
    }

    #[test]
    fn every_error_names_its_layer_and_key() {
        // A mapping completed by no layer: blamed on the one that started it.
        let e = load_err(None, &env(&[("FLORENCED_RATE_LIMIT__BURST", "5")]));
        assert_eq!(
            e,
            "environment variable FLORENCED_RATE_LIMIT__BURST: key `rate_limit`: \
             missing field `requests_per_minute`"
        );
        let f = write("rate_limit:\n  requests_per_minute: 60\n");
        let e = load_err(Some(&f.0), &env(&[("FLORENCED_RATE_LIMIT__BURST", "0")]));
        assert_eq!(
            e,
            "environment variable FLORENCED_RATE_LIMIT__BURST: key `rate_limit.burst`: must be > 0"
        );
        let e = load_err(Some(&f.0), &[set("rate_limit.burst=many")]);
        assert!(
            e.starts_with("--set rate_limit.burst=many: key `rate_limit.burst`: invalid type"),
            "{e}"
        );
        let f2 = write("rate_limit:\n  burst: 5\n");
        let e = load_err(Some(&f2.0), &[]);
        let file = format!("config file {}", f2.0.display());
        assert_eq!(
            e,
            format!("{file}: key `rate_limit`: missing field `requests_per_minute`")
        );
        let f = write("limits:\n  max_width: wide\n");
        let e = load_err(Some(&f.0), &[]);
        assert!(
            e.starts_with(&format!(
                "config file {}: key `limits.max_width`: invalid type",
                f.0.display()
            )),
            "{e}"
        );
        // Checks after the merge name who set each key involved.
        let f = write("max_length: 150\n");
        let e = load_err(Some(&f.0), &[set("max_tokens=120")]);
        assert_eq!(
            e,
            format!(
                "config file {}: key `max_length`: must be 1..=max_tokens \
                 (120, from --set max_tokens=120), got 150",
                f.0.display()
            )
        );
        let e = load_err(None, &env(&[("FLORENCED_MIN_LENGTH", "150")]));
        assert_eq!(
            e,
            "environment variable FLORENCED_MIN_LENGTH: key `min_length`: \
             150 must not exceed max_length (100, from defaults)"
        );
        let e = load_err(None, &[set("limits.max_megapixels=0")]);
        assert!(
            e.starts_with("--set limits.max_megapixels=0: key `limits.max_megapixels`: "),
            "{e}"
        );
        // Syntax errors name their layer too; a secret is never repeated.
        let e = Override::parse_set("queue_depth").unwrap_err().to_string();
        assert_eq!(e, "--set queue_depth: is not key=value");
        assert_eq!(
            set("api_key=s3cret").source_name,
            "--set api_key=<redacted>"
        );
        let f = write("port: [1\n");
        let e = load_err(Some(&f.0), &[]);
        assert!(
            e.starts_with(&format!("config file {}: ", f.0.display())),
            "{e}"
        );
        let e = load_err(Some(Path::new("/nonexistent/florenced.yaml")), &[]);
        assert!(
            e.starts_with("config file /nonexistent/florenced.yaml: cannot read it"),
            "{e}"
        );
    }

    #[test]
    fn http_limits_are_checked() {
        let c = Config::load(ConfigFile::None, &[]).unwrap();
        assert_eq!(c.http, Http::default());
        let e = load_err(None, &[set("http.body_bytes_in_flight=1000")]);
        assert!(
            e.starts_with("--set http.body_bytes_in_flight=1000: key `http.body_bytes_in_flight`: must hold at least the largest body"),
            "{e}"
        );
        let e = load_err(None, &[set("http.keep_alive_timeout_s=0")]);
        assert!(e.contains("`http.keep_alive_timeout_s`"), "{e}");
        let e = load_err(
            None,
            &[set("http.cors_allow_origins=[\"https://a.example/\"]")],
        );
        assert!(e.contains("`http.cors_allow_origins`"), "{e}");
        let c = Config::load(
            ConfigFile::None,
            &env(&[
                ("FLORENCED_HTTP__ALLOWED_HOSTS", "[camera.local, 10.0.0.5]"),
                ("FLORENCED_HTTP__MAX_CONNECTIONS", "64"),
            ]),
        )
        .unwrap();
        assert_eq!(c.http.allowed_hosts, ["camera.local", "10.0.0.5"]);
        assert_eq!(c.http.max_connections, 64);
    }

    /// The key lists that choose how a variable is read follow `Config`: a new
    /// string key must be listed, or digits in it would become a number.
    #[test]
    fn string_key_lists_match_the_config() {
        use layers::{OPTIONAL_STRING_KEYS, STRING_KEYS};
        let defaults = serde_json::to_value(Config::default()).unwrap();
        for (key, value) in defaults.as_object().unwrap() {
            let as_string = Config::load(ConfigFile::None, &[ov(key, "x")]).is_ok()
                || Config::load(ConfigFile::None, &[ov(key, "x{question}")]).is_ok();
            match value {
                serde_json::Value::String(_) => {
                    assert!(STRING_KEYS.contains(&key.as_str()), "{key}")
                }
                serde_json::Value::Null if as_string => {
                    assert!(OPTIONAL_STRING_KEYS.contains(&key.as_str()), "{key}")
                }
                _ => assert!(
                    !STRING_KEYS.contains(&key.as_str())
                        && !OPTIONAL_STRING_KEYS.contains(&key.as_str()),
                    "{key}"
                ),
            }
        }
    }
}
