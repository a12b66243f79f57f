//! The stand-in's "chip": ONNX Runtime, the library the host process already
//! loaded (one ONNX Runtime environment per process), or `ORT_DYLIB_PATH`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::Session;
use ort::value::Tensor;

use crate::hef::StreamSpec;

pub struct Graph {
    session: Session,
}

fn environment() -> Result<&'static Environment, String> {
    static ENV: OnceLock<Result<Environment, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let path = library().ok_or("no ONNX Runtime library loaded or named")?;
        ort::init_from(&path)
            .map_err(|e| e.to_string())?
            .with_name("florence-hailo-standin")
            .with_telemetry(false)
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// The ONNX Runtime library mapped into this process, else `ORT_DYLIB_PATH`.
fn library() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| {
            Path::new(p)
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so"))
        })
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from))
}

impl Graph {
    pub fn open(path: &Path) -> Result<Graph, String> {
        let env = environment()?;
        let session = Session::builder(env)
            .map_err(|e| e.to_string())?
            .with_intra_threads(2)
            .map_err(|e| e.to_string())?
            .with_intra_op_spinning(false)
            .map_err(|e| e.to_string())?
            .commit_from_file(path)
            .map_err(|e| e.to_string())?;
        Ok(Graph { session })
    }

    /// Runs the graph on the inputs; returns the outputs' values in `outputs` order.
    pub fn run(
        &mut self,
        inputs: &[(&StreamSpec, &[f32])],
        outputs: &[&StreamSpec],
    ) -> Result<Vec<Vec<f32>>, String> {
        let mut feeds = Vec::with_capacity(inputs.len());
        for (spec, data) in inputs {
            let t = Tensor::from_array((spec.onnx_shape.clone(), data.to_vec()))
                .map_err(|e| e.to_string())?;
            feeds.push((spec.onnx_name.clone(), t.into_dyn()));
        }
        let out = self.session.run(feeds).map_err(|e| e.to_string())?;
        outputs
            .iter()
            .map(|spec| {
                let (_, data) = out
                    .get(&spec.onnx_name)
                    .ok_or_else(|| format!("no output {}", spec.onnx_name))?
                    .try_extract_tensor::<f32>()
                    .map_err(|e| e.to_string())?;
                Ok(data.to_vec())
            })
            .collect()
    }
}
