//! `florenced signature`: every ONNX graph of a model directory, opened,
//! validated and described.

use std::path::{Path, PathBuf};

use super::session::{SessionOptions, graph_path, open_graph};
use super::signature::{self, Graph, Port};
use crate::engine::layout::Layout;
use crate::engine::model_error::{ModelError, VARIANTS};
use crate::engine::model_files::model_files;

/// The signature of every graph present in a model directory, for display.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GraphSignature {
    pub graph: String,
    pub file: PathBuf,
    pub inputs: Vec<PortInfo>,
    pub outputs: Vec<PortInfo>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PortInfo {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<String>,
}

impl From<&Port> for PortInfo {
    fn from(p: &Port) -> Self {
        PortInfo {
            name: p.name.clone(),
            dtype: p
                .elem
                .map_or_else(|| "non-tensor".to_owned(), |e| format!("{e:?}")),
            shape: p
                .shape
                .iter()
                .zip(p.symbols.iter().chain(std::iter::repeat(&String::new())))
                .map(|(d, s)| {
                    if *d >= 0 {
                        d.to_string()
                    } else if s.is_empty() {
                        "?".to_owned()
                    } else {
                        s.clone()
                    }
                })
                .collect(),
        }
    }
}

/// Opens and validates every graph of `dir` (the four onnx-community graphs,
/// the batchable decoder's two when present, and the Hailo stand-ins when
/// `hailo/` exists) and describes them.
pub fn describe(dir: &Path, options: &SessionOptions) -> Result<Vec<GraphSignature>, ModelError> {
    if !dir.is_dir() {
        return Err(ModelError::NoDirectory(dir.to_path_buf()));
    }
    if !VARIANTS.contains(&options.variant.as_str()) {
        return Err(ModelError::UnknownVariant(options.variant.clone()));
    }
    let files = model_files(dir)?;
    let runtime = crate::engine::onnx::runtime::runtime(options.ort_library.as_deref())?;
    let mut graphs: Vec<Graph> = match Layout::of(dir) {
        Layout::OnnxCommunity => Graph::ONNX_COMMUNITY.to_vec(),
        // Its only ONNX graph; the text networks are HEFs.
        Layout::HailoFlorence => vec![Graph::VisionEncoder],
    };
    if Layout::of(dir) == Layout::OnnxCommunity
        && super::session::has_batched_decoder(dir, &options.variant)
    {
        graphs.extend(Graph::BATCHED);
    }
    if dir.join("hailo").is_dir() {
        graphs.extend(Graph::HAILO);
    }
    let mut out = Vec::new();
    for graph in graphs {
        let session = open_graph(&runtime, &files, graph, options)?;
        let (inputs, outputs) = signature::ports(&session);
        out.push(GraphSignature {
            graph: graph.stem().to_owned(),
            file: graph_path(dir, graph, &options.variant),
            inputs: inputs.iter().map(PortInfo::from).collect(),
            outputs: outputs.iter().map(PortInfo::from).collect(),
        });
    }
    Ok(out)
}
