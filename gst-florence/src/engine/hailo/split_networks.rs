//! The split's two static-shape networks behind one trait, and their ONNX
//! Runtime implementation over the exporter's stand-ins (`hailo/*.onnx`);
//! HailoRT's over the HEFs is [`super::networks::HailoNetworks`].

use ort::session::Session;
use ort::value::Tensor;

use crate::engine::error::{EngineError, missing};
use crate::engine::onnx::tensors::ort_err;

/// The split's two static-shape networks: "run this network on these float
/// tensors" (HEFs on a Hailo device, ONNX stand-ins elsewhere).
pub trait SplitNetworks {
    /// [1, 1, N, D] input embeddings -> [1, 1, N, D] encoder states.
    fn text_encoder(&mut self, embeds: &[f32]) -> Result<Vec<f32>, EngineError>;
    /// Encoder states [1, 1, N, D] and a [1, 1, W, D] window -> logits [1, W, V].
    fn decoder(&mut self, states: &[f32], window: &[f32]) -> Result<Vec<f32>, EngineError>;
}

/// The exporter's ONNX stand-ins for the HEFs.
pub struct OnnxStandIns {
    pub(super) text_encoder: Session,
    pub(super) decoder: Session,
    pub(super) n: usize,
    pub(super) d: usize,
    pub(super) window: usize,
}

impl SplitNetworks for OnnxStandIns {
    fn text_encoder(&mut self, embeds: &[f32]) -> Result<Vec<f32>, EngineError> {
        let input = Tensor::from_array(([1usize, 1, self.n, self.d], embeds.to_vec()))
            .map_err(ort_err("hailo text encoder"))?;
        let out = self
            .text_encoder
            .run(ort::inputs! {"inputs_embeds" => input})
            .map_err(ort_err("hailo text encoder"))?;
        f32_output(&out, "hailo text encoder", "last_hidden_state")
    }

    fn decoder(&mut self, states: &[f32], window: &[f32]) -> Result<Vec<f32>, EngineError> {
        let s = Tensor::from_array(([1usize, 1, self.n, self.d], states.to_vec()))
            .map_err(ort_err("hailo decoder"))?;
        let w = Tensor::from_array(([1usize, 1, self.window, self.d], window.to_vec()))
            .map_err(ort_err("hailo decoder"))?;
        let out = self
            .decoder
            .run(ort::inputs! {"encoder_hidden_states" => s, "inputs_embeds" => w})
            .map_err(ort_err("hailo decoder"))?;
        f32_output(&out, "hailo decoder", "logits")
    }
}

/// The float output `name` of a stand-in's run, copied out.
fn f32_output(
    out: &ort::session::SessionOutputs<'_>,
    stage: &'static str,
    name: &str,
) -> Result<Vec<f32>, EngineError> {
    let (_, data) = out
        .get(name)
        .ok_or_else(|| missing(stage, name))?
        .try_extract_tensor::<f32>()
        .map_err(ort_err(stage))?;
    Ok(data.to_vec())
}
