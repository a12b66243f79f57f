//! The one place that names the backends: the choice a caller makes
//! ([`BackendChoice`]: `auto | onnx | hailo`, parsed and printed here for the
//! element's property, florenced's configuration and its command line) and
//! the backend that runs a request ([`BackendKind`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a model should run, as a caller asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BackendChoice {
    /// The Hailo device when the model has the split and the device answers
    /// at load, else ONNX Runtime.
    #[default]
    Auto,
    /// ONNX Runtime only.
    Onnx,
    /// Captions on the Hailo device (other tasks on ONNX Runtime); a missing
    /// bridge, driver or HEF stops the load.
    Hailo,
}

impl BackendChoice {
    pub const ALL: [BackendChoice; 3] = [
        BackendChoice::Auto,
        BackendChoice::Onnx,
        BackendChoice::Hailo,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Onnx => "onnx",
            BackendChoice::Hailo => "hailo",
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend {0:?}; expected auto, onnx or hailo")]
pub struct UnknownBackend(pub String);

impl FromStr for BackendChoice {
    type Err = UnknownBackend;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BackendChoice::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownBackend(s.to_owned()))
    }
}

impl Serialize for BackendChoice {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for BackendChoice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Which backend ran a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// ONNX Runtime on the CPU.
    Onnx,
    /// The Hailo split: text encoder and decoder on a Hailo NPU.
    Hailo,
}

impl BackendKind {
    /// The name reports use (`/health`'s and the responses' `backend`).
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Onnx => "onnx-cpu",
            BackendKind::Hailo => "hailo",
        }
    }

    /// Whether it runs on a device that other processes may hold.
    pub fn has_device(self) -> bool {
        self == BackendKind::Hailo
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for BackendKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}
