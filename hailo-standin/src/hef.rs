//! The stand-in's "HEF": a JSON file naming an ONNX graph and describing the
//! streams a real HEF has (HailoRT's names, 3-D shapes, the chip it was
//! compiled for). The frame sizes are those of the real HEFs at float32.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The `format` value of a stand-in HEF.
pub const FORMAT: &str = "florence-hailo-standin-hef/1";

#[derive(Debug, Clone, Deserialize)]
pub struct StandInHef {
    pub format: String,
    /// The chip it is "compiled" for (`hailo10h`, `hailo8`, ...).
    pub chip: String,
    /// The ONNX graph, relative to the HEF file.
    pub onnx: PathBuf,
    pub inputs: Vec<StreamSpec>,
    pub outputs: Vec<StreamSpec>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StreamSpec {
    /// HailoRT's stream name.
    pub name: String,
    /// The ONNX graph's input or output it stands for.
    pub onnx_name: String,
    /// HailoRT's (height, width, features).
    pub shape: [u32; 3],
    /// The ONNX tensor's shape (same element count).
    pub onnx_shape: Vec<usize>,
}

impl StreamSpec {
    pub fn frame_bytes(&self) -> u64 {
        self.shape.iter().map(|&d| u64::from(d)).product::<u64>() * 4
    }
}

/// Why a file is not a usable stand-in HEF.
pub enum HefError {
    /// Cannot be read (HAILO_OPEN_FILE_FAILURE).
    Open,
    /// Not a stand-in HEF, or inconsistent (HAILO_INVALID_HEF).
    Invalid,
}

impl StandInHef {
    pub fn read(path: &Path) -> Result<(StandInHef, PathBuf), HefError> {
        let text = std::fs::read(path).map_err(|_| HefError::Open)?;
        let hef: StandInHef = serde_json::from_slice(&text).map_err(|_| HefError::Invalid)?;
        let consistent = hef.format == FORMAT
            && hef.inputs.iter().chain(&hef.outputs).all(|s| {
                s.onnx_shape.iter().product::<usize>() as u64 * 4 == s.frame_bytes()
                    && s.name.len() < 128
            });
        if !consistent {
            return Err(HefError::Invalid);
        }
        let onnx = path.parent().unwrap_or(Path::new(".")).join(&hef.onnx);
        Ok((hef, onnx))
    }
}
