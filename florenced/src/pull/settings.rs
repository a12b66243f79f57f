//! The Hugging Face Hub settings, from the same environment variables and with
//! the same defaults as Python's huggingface_hub, so both use one cache.

use std::path::PathBuf;

pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

#[derive(Debug, Clone)]
pub struct HubSettings {
    /// `HF_ENDPOINT` without a trailing `/`.
    pub endpoint: String,
    /// `HF_TOKEN`, else the file `huggingface-cli login` writes.
    pub token: Option<String>,
    /// The hub cache: `HF_HUB_CACHE`, else `$HF_HOME/hub`.
    pub cache_dir: PathBuf,
    /// `HF_HUB_OFFLINE` (or transformers' `TRANSFORMERS_OFFLINE`): only the cache.
    pub offline: bool,
}

/// huggingface_hub's truthy values.
fn is_true(v: Option<String>) -> bool {
    v.is_some_and(|v| {
        matches!(
            v.trim().to_ascii_uppercase().as_str(),
            "1" | "ON" | "YES" | "TRUE"
        )
    })
}

/// `~` at the start means the home directory, as Python's `expanduser` reads it.
fn expand_home(p: &str, home: &Option<String>) -> PathBuf {
    match (p.strip_prefix('~'), home) {
        (Some(rest), Some(h)) if rest.is_empty() || rest.starts_with('/') => {
            PathBuf::from(format!("{h}{rest}"))
        }
        _ => PathBuf::from(p),
    }
}

impl HubSettings {
    pub fn from_env() -> HubSettings {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// `var` looks a variable up; empty values count as unset.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> HubSettings {
        let var = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        let home = var("HOME");
        let hf_home = var("HF_HOME")
            .map(|p| expand_home(&p, &home))
            .unwrap_or_else(|| {
                let cache = var("XDG_CACHE_HOME")
                    .map(|p| expand_home(&p, &home))
                    .unwrap_or_else(|| expand_home("~/.cache", &home));
                cache.join("huggingface")
            });
        let cache_dir = var("HF_HUB_CACHE")
            .or_else(|| var("HUGGINGFACE_HUB_CACHE"))
            .map(|p| expand_home(&p, &home))
            .unwrap_or_else(|| hf_home.join("hub"));
        let token_path = var("HF_TOKEN_PATH")
            .map(|p| expand_home(&p, &home))
            .unwrap_or_else(|| hf_home.join("token"));
        let token = var("HF_TOKEN")
            .or_else(|| var("HUGGING_FACE_HUB_TOKEN"))
            .or_else(|| std::fs::read_to_string(token_path).ok())
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        let endpoint = var("HF_ENDPOINT")
            .map(|e| e.trim().trim_end_matches('/').to_owned())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
        HubSettings {
            endpoint,
            token,
            cache_dir,
            offline: is_true(var("HF_HUB_OFFLINE")) || is_true(var("TRANSFORMERS_OFFLINE")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> HubSettings {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        HubSettings::from_vars(|k| map.get(k).cloned())
    }

    #[test]
    fn the_cache_follows_huggingface_hubs_precedence() {
        let s = settings(&[("HOME", "/h")]);
        assert_eq!(s.cache_dir, PathBuf::from("/h/.cache/huggingface/hub"));
        assert_eq!(s.endpoint, "https://huggingface.co");
        assert!(!s.offline);
        let s = settings(&[("HOME", "/h"), ("XDG_CACHE_HOME", "/x")]);
        assert_eq!(s.cache_dir, PathBuf::from("/x/huggingface/hub"));
        let s = settings(&[
            ("HOME", "/h"),
            ("XDG_CACHE_HOME", "/x"),
            ("HF_HOME", "~/hf"),
        ]);
        assert_eq!(s.cache_dir, PathBuf::from("/h/hf/hub"));
        let s = settings(&[("HF_HOME", "/hf"), ("HF_HUB_CACHE", "/c")]);
        assert_eq!(s.cache_dir, PathBuf::from("/c"));
    }

    #[test]
    fn endpoint_token_and_offline_come_from_the_environment() {
        let s = settings(&[
            ("HF_ENDPOINT", "http://127.0.0.1:9/"),
            ("HF_TOKEN", " hf_x \n"),
            ("HF_HUB_OFFLINE", "yes"),
            ("HF_HOME", "/nonexistent"),
        ]);
        assert_eq!(s.endpoint, "http://127.0.0.1:9");
        assert_eq!(s.token.as_deref(), Some("hf_x"));
        assert!(s.offline);
        assert!(!settings(&[("HF_HUB_OFFLINE", "0")]).offline);
        assert!(settings(&[("TRANSFORMERS_OFFLINE", "1")]).offline);
    }
}
