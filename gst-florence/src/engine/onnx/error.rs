//! Why ONNX Runtime cannot open a model's graphs: its library, a graph file,
//! its signature, an execution provider.

use std::path::PathBuf;

use super::runtime::RuntimeError;
use super::signature::{Graph, Mismatch};

#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("{path}: missing (the {graph:?} graph of a Florence-2 model directory)")]
    MissingGraph { path: PathBuf, graph: Graph },
    #[error("{path}: ONNX Runtime cannot load it{}: {reason}", load_hint(.reason))]
    Load { path: PathBuf, reason: String },
    #[error("{path}: wrong signature for the {graph:?} graph:\n{}", list(.problems))]
    Signature {
        path: PathBuf,
        graph: Graph,
        problems: Vec<Mismatch>,
    },
    #[error(
        "the ONNX Runtime library {library} has no {requested}; it offers {}",
        .available.join(", ")
    )]
    ExecutionProviderMissing {
        requested: String,
        library: PathBuf,
        available: Vec<String>,
    },
    #[error("ONNX Runtime ({library}) cannot use the {requested}: {reason}")]
    ExecutionProvider {
        requested: String,
        library: PathBuf,
        reason: String,
    },
}

fn list(problems: &[Mismatch]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A parse failure means a damaged or foreign file; other load errors (a type
/// error in the graph, an unsupported operator) speak for themselves.
fn load_hint(reason: &str) -> &'static str {
    if reason.to_ascii_lowercase().contains("protobuf") {
        " (truncated or not an ONNX model?)"
    } else {
        ""
    }
}
