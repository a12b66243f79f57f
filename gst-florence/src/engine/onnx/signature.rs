//! The input/output signatures of the Florence-2 ONNX graphs.
//!
//! Graphs are bound by name, never by position. At load every graph is
//! checked against the layout of the onnx-community export (and the Hailo
//! stand-ins this project's exporter writes): each name present, of the right
//! element type and rank, and every static dimension consistent with the
//! model's config. A mismatch names the file, the tensor and what was
//! expected.

use std::fmt;

use ort::session::Session;
use ort::value::{TensorElementType, ValueType};

/// The element types the engine feeds or reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    /// f32, or f16 in half-precision variants.
    Float,
    I64,
    Bool,
}

impl fmt::Display for Elem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Elem::Float => "float32 (or float16)",
            Elem::I64 => "int64",
            Elem::Bool => "bool",
        })
    }
}

/// One named tensor: element type, rank, and the dimensions known from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub elem: Elem,
    pub rank: usize,
    /// (axis, size) pairs that a static dimension must equal.
    pub dims: Vec<(usize, i64)>,
}

fn t(name: impl Into<String>, elem: Elem, rank: usize, dims: &[(usize, i64)]) -> TensorSpec {
    TensorSpec {
        name: name.into(),
        elem,
        rank,
        dims: dims.to_vec(),
    }
}

/// The graphs of a model directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Graph {
    VisionEncoder,
    EmbedTokens,
    Encoder,
    DecoderMerged,
    /// This project's exporter's batchable decoder step (optional; used when
    /// present): rows of different requests at different positions in one run.
    DecoderBatched,
    /// Its companion: a request's cross-attention keys and values, once.
    DecoderCrossKeyValues,
    /// Static-shape stand-in for Hailo's text-encoder HEF.
    HailoTextEncoder,
    /// Static-shape stand-in for Hailo's 32-token-window decoder HEF.
    HailoDecoder,
}

impl Graph {
    pub const ONNX_COMMUNITY: [Graph; 4] = [
        Graph::VisionEncoder,
        Graph::EmbedTokens,
        Graph::Encoder,
        Graph::DecoderMerged,
    ];
    /// The batchable decoder's graphs, loaded beside the four when present
    /// (`tools/export/florence_export/batched.py` writes them).
    pub const BATCHED: [Graph; 2] = [Graph::DecoderCrossKeyValues, Graph::DecoderBatched];
    pub const HAILO: [Graph; 2] = [Graph::HailoTextEncoder, Graph::HailoDecoder];

    /// File name stem; `onnx/<stem><variant suffix>.onnx` or `hailo/<stem>.onnx`.
    pub fn stem(self) -> &'static str {
        match self {
            Graph::VisionEncoder => "vision_encoder",
            Graph::EmbedTokens => "embed_tokens",
            Graph::Encoder => "encoder_model",
            Graph::DecoderMerged => "decoder_model_merged",
            Graph::DecoderBatched => "decoder_model_batched",
            Graph::DecoderCrossKeyValues => "decoder_cross_key_values",
            Graph::HailoTextEncoder => "text_encoder",
            Graph::HailoDecoder => "decoder",
        }
    }

    /// The graph whose file holds this graph's weights (as ONNX external
    /// data), if another's: the batchable decoder's read the merged decoder's.
    pub fn weights_from(self) -> Option<Graph> {
        match self {
            Graph::DecoderBatched | Graph::DecoderCrossKeyValues => Some(Graph::DecoderMerged),
            _ => None,
        }
    }

    pub fn subdir(self) -> &'static str {
        match self {
            Graph::HailoTextEncoder | Graph::HailoDecoder => "hailo",
            _ => "onnx",
        }
    }
}

/// The dimensions a signature is checked against, from the model's config.
#[derive(Debug, Clone, Copy)]
pub struct Dims {
    pub d_model: usize,
    pub decoder_layers: usize,
    pub decoder_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
}

#[derive(Debug, Clone)]
pub struct GraphSpec {
    pub graph: Graph,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
}

/// Names of the per-layer cache tensors, in the order the engine keeps them:
/// decoder key, decoder value, encoder key, encoder value.
pub fn cache_names(prefix: &str, layer: usize) -> [String; 4] {
    [
        format!("{prefix}.{layer}.decoder.key"),
        format!("{prefix}.{layer}.decoder.value"),
        format!("{prefix}.{layer}.encoder.key"),
        format!("{prefix}.{layer}.encoder.value"),
    ]
}

impl GraphSpec {
    pub fn new(graph: Graph, d: &Dims) -> Self {
        use Elem::*;
        let dm = d.d_model as i64;
        let v = d.vocab_size as i64;
        let kv = [(1, d.decoder_heads as i64), (3, d.head_dim as i64)];
        let (inputs, outputs) = match graph {
            Graph::VisionEncoder => (
                vec![t("pixel_values", Float, 4, &[(1, 3)])],
                vec![t("image_features", Float, 3, &[(2, dm)])],
            ),
            Graph::EmbedTokens => (
                vec![t("input_ids", I64, 2, &[])],
                vec![t("inputs_embeds", Float, 3, &[(2, dm)])],
            ),
            Graph::Encoder => (
                vec![
                    t("attention_mask", I64, 2, &[]),
                    t("inputs_embeds", Float, 3, &[(2, dm)]),
                ],
                vec![t("last_hidden_state", Float, 3, &[(2, dm)])],
            ),
            Graph::DecoderMerged => {
                let mut inputs = vec![
                    t("encoder_attention_mask", I64, 2, &[]),
                    t("encoder_hidden_states", Float, 3, &[(2, dm)]),
                    t("inputs_embeds", Float, 3, &[(2, dm)]),
                ];
                let mut outputs = vec![t("logits", Float, 3, &[(2, v)])];
                for layer in 0..d.decoder_layers {
                    for name in cache_names("past_key_values", layer) {
                        inputs.push(t(name, Float, 4, &kv));
                    }
                    for name in cache_names("present", layer) {
                        outputs.push(t(name, Float, 4, &kv));
                    }
                }
                inputs.push(t("use_cache_branch", Bool, 1, &[(0, 1)]));
                (inputs, outputs)
            }
            Graph::DecoderBatched => {
                let mut inputs = vec![
                    t("inputs_embeds", Float, 3, &[(1, 1), (2, dm)]),
                    t("position_ids", I64, 2, &[(1, 1)]),
                    t("self_attention_mask", I64, 2, &[]),
                    t("encoder_attention_mask", I64, 2, &[]),
                ];
                let mut outputs = vec![t("logits", Float, 3, &[(1, 1), (2, v)])];
                for layer in 0..d.decoder_layers {
                    for name in cache_names("past_key_values", layer) {
                        inputs.push(t(name, Float, 4, &kv));
                    }
                    for name in &cache_names("new_key_values", layer)[..2] {
                        outputs.push(t(name.as_str(), Float, 4, &[kv[0], (2, 1), kv[1]]));
                    }
                }
                (inputs, outputs)
            }
            Graph::DecoderCrossKeyValues => {
                let inputs = vec![t("encoder_hidden_states", Float, 3, &[(2, dm)])];
                let outputs = (0..d.decoder_layers)
                    .flat_map(|layer| cache_names("present", layer).into_iter().skip(2))
                    .map(|name| t(name, Float, 4, &kv))
                    .collect();
                (inputs, outputs)
            }
            Graph::HailoTextEncoder => (
                vec![t("inputs_embeds", Float, 4, &[(0, 1), (1, 1), (3, dm)])],
                vec![t("last_hidden_state", Float, 4, &[(0, 1), (1, 1), (3, dm)])],
            ),
            Graph::HailoDecoder => (
                vec![
                    t(
                        "encoder_hidden_states",
                        Float,
                        4,
                        &[(0, 1), (1, 1), (3, dm)],
                    ),
                    t("inputs_embeds", Float, 4, &[(0, 1), (1, 1), (3, dm)]),
                ],
                vec![t("logits", Float, 3, &[(0, 1), (2, v)])],
            ),
        };
        GraphSpec {
            graph,
            inputs,
            outputs,
        }
    }
}

/// What is wrong with a graph's signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("missing {kind} `{name}` ({elem}, rank {rank})")]
    Missing {
        kind: &'static str,
        name: String,
        elem: Elem,
        rank: usize,
    },
    #[error("{kind} `{name}` has element type {found}, expected {expected}")]
    Type {
        kind: &'static str,
        name: String,
        found: String,
        expected: Elem,
    },
    #[error("{kind} `{name}` has rank {found}, expected {expected}")]
    Rank {
        kind: &'static str,
        name: String,
        found: usize,
        expected: usize,
    },
    #[error("{kind} `{name}` has size {found} on axis {axis}, the model config says {expected}")]
    Dim {
        kind: &'static str,
        name: String,
        axis: usize,
        found: i64,
        expected: i64,
    },
    #[error("unexpected input `{name}`: the engine does not know how to feed it")]
    UnknownInput { name: String },
    #[error("{kind} `{name}` is not a tensor")]
    NotTensor { kind: &'static str, name: String },
}

/// Element type and shape of a graph input/output, as the session reports it
/// (-1 for a dynamic dimension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    pub elem: Option<TensorElementType>,
    pub shape: Vec<i64>,
    pub symbols: Vec<String>,
}

pub fn ports(session: &Session) -> (Vec<Port>, Vec<Port>) {
    let conv = |o: &ort::value::Outlet| {
        let (elem, shape, symbols) = match o.dtype() {
            ValueType::Tensor {
                ty,
                shape,
                dimension_symbols,
            } => (
                Some(*ty),
                shape.iter().copied().collect(),
                dimension_symbols.iter().map(|s| s.to_string()).collect(),
            ),
            _ => (None, Vec::new(), Vec::new()),
        };
        Port {
            name: o.name().to_owned(),
            elem,
            shape,
            symbols,
        }
    };
    (
        session.inputs().iter().map(conv).collect(),
        session.outputs().iter().map(conv).collect(),
    )
}

fn elem_ok(expected: Elem, found: TensorElementType) -> bool {
    match expected {
        Elem::Float => matches!(
            found,
            TensorElementType::Float32 | TensorElementType::Float16
        ),
        Elem::I64 => found == TensorElementType::Int64,
        Elem::Bool => found == TensorElementType::Bool,
    }
}

fn check_side(kind: &'static str, specs: &[TensorSpec], ports: &[Port], out: &mut Vec<Mismatch>) {
    for spec in specs {
        let Some(port) = ports.iter().find(|p| p.name == spec.name) else {
            out.push(Mismatch::Missing {
                kind,
                name: spec.name.clone(),
                elem: spec.elem,
                rank: spec.rank,
            });
            continue;
        };
        let Some(elem) = port.elem else {
            out.push(Mismatch::NotTensor {
                kind,
                name: spec.name.clone(),
            });
            continue;
        };
        if !elem_ok(spec.elem, elem) {
            out.push(Mismatch::Type {
                kind,
                name: spec.name.clone(),
                found: format!("{elem:?}"),
                expected: spec.elem,
            });
        }
        if port.shape.len() != spec.rank {
            out.push(Mismatch::Rank {
                kind,
                name: spec.name.clone(),
                found: port.shape.len(),
                expected: spec.rank,
            });
            continue;
        }
        for &(axis, expected) in &spec.dims {
            let found = port.shape[axis];
            if found >= 0 && found != expected {
                out.push(Mismatch::Dim {
                    kind,
                    name: spec.name.clone(),
                    axis,
                    found,
                    expected,
                });
            }
        }
    }
}

/// Every mismatch between the ports of a graph and its spec (empty when it fits).
pub fn check(spec: &GraphSpec, inputs: &[Port], outputs: &[Port]) -> Vec<Mismatch> {
    let mut out = Vec::new();
    check_side("input", &spec.inputs, inputs, &mut out);
    check_side("output", &spec.outputs, outputs, &mut out);
    for port in inputs {
        if !spec.inputs.iter().any(|s| s.name == port.name) {
            out.push(Mismatch::UnknownInput {
                name: port.name.clone(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims() -> Dims {
        Dims {
            d_model: 768,
            decoder_layers: 6,
            decoder_heads: 12,
            head_dim: 64,
            vocab_size: 51289,
        }
    }

    fn port(name: &str, elem: TensorElementType, shape: &[i64]) -> Port {
        Port {
            name: name.into(),
            elem: Some(elem),
            shape: shape.to_vec(),
            symbols: vec![],
        }
    }

    #[test]
    fn merged_decoder_lists_every_layer() {
        let spec = GraphSpec::new(Graph::DecoderMerged, &dims());
        // 3 inputs + 4 per layer + use_cache_branch; logits + 4 per layer.
        assert_eq!(spec.inputs.len(), 3 + 6 * 4 + 1);
        assert_eq!(spec.outputs.len(), 1 + 6 * 4);
        assert!(
            spec.inputs
                .iter()
                .any(|t| t.name == "past_key_values.5.encoder.value")
        );
        assert!(
            spec.outputs
                .iter()
                .any(|t| t.name == "present.0.decoder.key")
        );
    }

    #[test]
    fn reports_each_kind_of_mismatch() {
        use TensorElementType::*;
        let spec = GraphSpec::new(Graph::Encoder, &dims());
        let good_in = [
            port("attention_mask", Int64, &[-1, -1]),
            port("inputs_embeds", Float32, &[-1, -1, 768]),
        ];
        let good_out = [port("last_hidden_state", Float32, &[-1, -1, 768])];
        assert!(check(&spec, &good_in, &good_out).is_empty());

        let renamed = [
            port("mask", Int64, &[-1, -1]),
            port("inputs_embeds", Float32, &[-1, -1, 768]),
        ];
        let found = check(&spec, &renamed, &good_out);
        assert!(matches!(&found[0], Mismatch::Missing { name, .. } if name == "attention_mask"));
        assert!(matches!(&found[1], Mismatch::UnknownInput { name } if name == "mask"));

        let wrong = [
            port("attention_mask", Int32, &[-1, -1]),
            port("inputs_embeds", Float32, &[-1, 768]),
        ];
        let wide = [port("last_hidden_state", Float32, &[-1, -1, 1024])];
        let found = check(&spec, &wrong, &wide);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(matches!(found[0], Mismatch::Type { .. }));
        assert!(matches!(
            found[1],
            Mismatch::Rank {
                found: 2,
                expected: 3,
                ..
            }
        ));
        assert!(matches!(
            found[2],
            Mismatch::Dim {
                found: 1024,
                expected: 768,
                ..
            }
        ));
        assert_eq!(
            found[2].to_string(),
            "output `last_hidden_state` has size 1024 on axis 2, the model config says 768"
        );
    }
}
