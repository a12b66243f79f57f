//! Everything `florenced pull` can fail on, each message saying what is wrong
//! and what to do.

use std::path::PathBuf;

use gstflorence::engine::model_error::VARIANTS;

use super::naming::{SHORT_NAMES, variant_name};

fn short_names() -> String {
    SHORT_NAMES
        .iter()
        .map(|(s, _)| *s)
        .collect::<Vec<_>>()
        .join(", ")
}

fn variant_list(v: &[String]) -> String {
    if v.is_empty() {
        return "none".to_owned();
    }
    v.iter()
        .map(|s| variant_name(s))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(
        "`{0}` is neither a known model ({names}) nor a Hugging Face repository id (owner/name)",
        names = short_names()
    )]
    UnknownModel(String),
    #[error(
        "unknown variant {0:?}; expected one of {list}",
        list = VARIANTS.iter().map(|v| variant_name(v)).collect::<Vec<_>>().join(", ")
    )]
    BadVariant(String),
    #[error(
        "cannot reach the Hugging Face Hub at {endpoint}: {cause} (no network? HF_ENDPOINT names a mirror; HF_HUB_OFFLINE=1 uses only the cache)"
    )]
    Unreachable { endpoint: String, cause: String },
    #[error(
        "repository {repo} not found on {endpoint}{hint}",
        hint = if *.with_token { " (or the token in HF_TOKEN has no access to it)" } else { " (if it is private or gated, set HF_TOKEN)" }
    )]
    RepoNotFound {
        repo: String,
        endpoint: String,
        with_token: bool,
    },
    #[error("repository {repo} has no revision {revision:?}")]
    RevisionNotFound { repo: String, revision: String },
    #[error("{url}: the Hub answered {status}{}", if .message.is_empty() { String::new() } else { format!(": {}", .message) })]
    Http {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{url}: unexpected answer from the Hub: {message}")]
    Protocol { url: String, message: String },
    #[error(
        "{repo} has no {name} variant (missing {missing}); variants there: {available}",
        name = variant_name(.variant),
        missing = .missing.join(", "),
        available = variant_list(.available)
    )]
    MissingVariant {
        repo: String,
        variant: String,
        missing: Vec<String>,
        available: Vec<String>,
    },
    #[error(
        "{repo} is not a Florence-2 model in the onnx-community layout: it has no {}",
        .missing.join(", ")
    )]
    NotFlorenceLayout { repo: String, missing: Vec<String> },
    #[error(
        "{repo}@{revision} is not in the cache {cache}{why}",
        cache = .cache.display(),
        why = if .missing.is_empty() { String::new() } else { format!(" (missing {})", .missing.join(", ")) }
    )]
    NotCached {
        repo: String,
        revision: String,
        cache: PathBuf,
        missing: Vec<String>,
    },
    #[error(
        "model directory {spec}: no such directory, and the Hub repository {repo} is not in the cache {cache} (`florenced pull {spec}` downloads it)",
        cache = .cache.display()
    )]
    NoModel {
        spec: String,
        repo: String,
        cache: PathBuf,
    },
    #[error("disk full: {path}: {detail}", path = .path.display())]
    DiskFull { path: PathBuf, detail: String },
    #[error(
        "{file}: {algorithm} {actual} does not match the Hub's {expected}: the download is corrupt and was deleted (run pull again)"
    )]
    Corrupt {
        file: String,
        algorithm: &'static str,
        expected: String,
        actual: String,
    },
    #[error("{file}: the server sent {actual} bytes, the Hub lists {expected}")]
    SizeMismatch {
        file: String,
        expected: u64,
        actual: u64,
    },
    #[error("{file}: transfer interrupted after {bytes} bytes ({cause}); run pull again to resume")]
    Interrupted {
        file: String,
        bytes: u64,
        cause: String,
    },
    #[error("{path}: {source}", path = .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the model in {dir} does not load: {source}", dir = .dir.display())]
    Invalid {
        dir: PathBuf,
        source: gstflorence::engine::ModelError,
    },
}

impl PullError {
    /// A file-system error, with a full disk reported as such.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> PullError {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::StorageFull {
            let free = super::disk::available_bytes(&path)
                .map_or_else(String::new, |b| format!(" ({} free)", mib(b)));
            return PullError::DiskFull {
                path,
                detail: format!("{source}{free}"),
            };
        }
        PullError::Io { path, source }
    }
}
