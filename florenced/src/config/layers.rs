//! The configuration's layers (defaults, the YAML file, `FLORENCED_*`
//! variables, flags) merged into one JSON tree, remembering which layer set
//! which key so that every error names the layer and the key.
//!
//! A variable or `--set` value is read for the key's type: for string keys it
//! is the text itself (an API key of digits stays a string); for optional
//! string keys (`model_dir`, `ort_library`, `vqa_prompt_template`) YAML's null
//! spellings (`null`, `~`, nothing) mean "unset", as in the file: a directory or
//! a template literally named `null` makes no sense, while a deployment tool
//! that renders an absent value as `null` is common. `api_key` refuses them:
//! neither "no authentication" nor the key `null` is a safe reading. Other keys
//! take a YAML value (`8`, `true`, `{requests_per_minute: 60}`).

use std::path::Path;

use serde_json::Value;

use super::ConfigError;

/// Environment variables with this prefix override configuration keys;
/// nested keys join with `__` (`FLORENCED_LIMITS__MAX_WIDTH`).
pub const ENV_PREFIX: &str = "FLORENCED_";

/// Keys whose value is always a string, whatever it looks like.
pub(super) const STRING_KEYS: &[&str] = &[
    "host",
    "model_variant",
    "backend",
    "execution_provider",
    "hailo.group_id",
    "log_format",
    "log_level",
];
/// String keys that may be unset.
pub(super) const OPTIONAL_STRING_KEYS: &[&str] =
    &["model_dir", "ort_library", "vqa_prompt_template", "api_key"];
/// Secrets, never repeated in a message.
const SECRET_KEYS: &[&str] = &["api_key"];

/// How YAML writes "no value".
fn is_null_spelling(v: &str) -> bool {
    matches!(v.trim(), "" | "~" | "null" | "Null" | "NULL")
}

/// One override: a dotted key and its raw text, with the layer it came from.
#[derive(Debug, Clone)]
pub struct Override {
    pub key: String,
    pub value: String,
    /// The layer, as messages name it: `environment variable FLORENCED_PORT`,
    /// `--set port=80`, `--port`.
    pub source_name: String,
}

impl Override {
    /// Parses `key=value` as given to `--set`.
    pub fn parse_set(arg: &str) -> Result<Override, ConfigError> {
        let (key, value) = arg.split_once('=').ok_or_else(|| ConfigError::Syntax {
            layer: format!("--set {arg}"),
            message: "is not key=value".into(),
        })?;
        let key = key.trim().to_owned();
        let shown = if SECRET_KEYS.contains(&key.as_str()) {
            "<redacted>"
        } else {
            value
        };
        Ok(Override {
            source_name: format!("--set {key}={shown}"),
            key,
            value: value.to_owned(),
        })
    }

    /// The value as a tree node, read for the key's type.
    fn parsed(&self) -> Result<Value, String> {
        let key = self.key.as_str();
        if STRING_KEYS.contains(&key) {
            Ok(Value::String(self.value.clone()))
        } else if OPTIONAL_STRING_KEYS.contains(&key) {
            match is_null_spelling(&self.value) {
                false => Ok(Value::String(self.value.clone())),
                true if SECRET_KEYS.contains(&key) => Err(format!(
                    "{:?} is not an API key; to turn authentication off, do not set the key",
                    self.value
                )),
                true => Ok(Value::Null),
            }
        } else {
            serde_yaml_ng::from_str::<Value>(&self.value)
                .map_err(|e| format!("cannot parse {:?}: {e}", self.value))
        }
    }
}

/// Overrides from `FLORENCED_*` environment variables, in key order.
pub fn env_overrides(vars: impl IntoIterator<Item = (String, String)>) -> Vec<Override> {
    let mut out: Vec<Override> = vars
        .into_iter()
        .filter_map(|(name, value)| {
            if name == super::CONFIG_FILE_ENV {
                return None;
            }
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

/// Whether `inner` is `outer` or a key inside it (`rate_limit.burst` in `rate_limit`).
fn within(inner: &str, outer: &str) -> bool {
    inner == outer || (inner.starts_with(outer) && inner.as_bytes().get(outer.len()) == Some(&b'.'))
}

/// The merged tree and who set what in it.
pub(super) struct Layers {
    /// `config file PATH`, when a file was read.
    file: Option<String>,
    file_tree: Value,
    /// (key, layer) in the order applied.
    overrides: Vec<(String, String)>,
}

impl Layers {
    /// Reads the file (if any) and applies the overrides in order: the tree to
    /// deserialize, and the record of its layers.
    pub(super) fn merge(
        file: Option<&Path>,
        overrides: &[Override],
    ) -> Result<(Value, Layers), ConfigError> {
        let (file_tree, file_layer) = match file {
            Some(p) => {
                let layer = format!("config file {}", p.display());
                (read_yaml(p, &layer)?, Some(layer))
            }
            None => (Value::Null, None),
        };
        let file_tree = match file_tree {
            Value::Null => Value::Object(Default::default()),
            v @ Value::Object(_) => v,
            _ => {
                return Err(ConfigError::Syntax {
                    layer: file_layer.unwrap_or_default(),
                    message: "the configuration must be a mapping of keys to values".into(),
                });
            }
        };
        let mut layers = Layers {
            file: file_layer,
            file_tree,
            overrides: Vec::new(),
        };
        let mut tree = layers.file_tree.clone();
        for o in overrides {
            set_path(&mut tree, o)?;
            layers
                .overrides
                .push((o.key.clone(), o.source_name.clone()));
        }
        Ok((tree, layers))
    }

    /// The layer(s) that gave `key` its value: the last one that set the key or
    /// a mapping around it; else every one that set keys inside it (a mapping
    /// that misses a field); else the defaults.
    pub(super) fn blame(&self, key: &str) -> String {
        if let Some((_, layer)) = self.overrides.iter().rev().find(|(k, _)| within(key, k)) {
            return layer.clone();
        }
        let mut layers: Vec<&str> = Vec::new();
        if let Some(file) = &self.file
            && self.file_sets(key)
        {
            layers.push(file);
        }
        for (k, layer) in &self.overrides {
            if within(k, key) && !layers.contains(&layer.as_str()) {
                layers.push(layer);
            }
        }
        if layers.is_empty() {
            "defaults".into()
        } else {
            layers.join(" and ")
        }
    }

    /// Whether the file has `key`, or a mapping around it (which then failed).
    fn file_sets(&self, key: &str) -> bool {
        let mut node = &self.file_tree;
        for part in key.split('.') {
            match node.get(part) {
                Some(v @ Value::Object(_)) => node = v,
                Some(_) => return true,
                None => return false,
            }
        }
        true
    }

    /// An error about `key`, blamed on its layer.
    pub(super) fn error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Key {
            layer: self.blame(key),
            key: key.into(),
            message: message.into(),
        }
    }

    /// `key` and its value as a message names a related key: `max_tokens (50, from --set max_tokens=50)`.
    pub(super) fn describe(&self, key: &str, value: impl std::fmt::Display) -> String {
        format!("{key} ({value}, from {})", self.blame(key))
    }
}

fn read_yaml(path: &Path, layer: &str) -> Result<Value, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Syntax {
        layer: layer.to_owned(),
        message: format!("cannot read it: {e}"),
    })?;
    serde_yaml_ng::from_str::<Value>(&text).map_err(|e| ConfigError::Syntax {
        layer: layer.to_owned(),
        message: e.to_string(),
    })
}

fn set_path(tree: &mut Value, o: &Override) -> Result<(), ConfigError> {
    let err = |message: String| ConfigError::Key {
        key: o.key.clone(),
        layer: o.source_name.clone(),
        message,
    };
    let parts: Vec<&str> = o.key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(err("is not a configuration key".into()));
    }
    let value = o.parsed().map_err(err)?;
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
