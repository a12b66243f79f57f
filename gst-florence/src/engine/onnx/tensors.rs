//! ONNX Runtime values and runs the ONNX backend and the Hailo split's
//! stand-ins share: float32/float16 tensors, the vision encoder and token
//! embedding runs, and run options that a cancel terminates.

use std::path::PathBuf;
use std::sync::Arc;

use ort::session::{RunOptions, Session};
use ort::value::{DynValue, Tensor, TensorElementType, ValueType};

use super::error::OnnxError;
use crate::engine::error::{EngineError, missing};
use crate::engine::interrupt::{DeadlineTimer, Interrupt, Wake};
use crate::engine::model_error::ModelError;
use crate::engine::vision_cache::Features;

pub(crate) fn ort_err(stage: &'static str) -> impl Fn(ort::Error) -> EngineError {
    move |e| EngineError::Inference {
        stage,
        message: e.to_string(),
    }
}

/// Run options for one request's ONNX Runtime calls, terminated by a cancel
/// of `interrupt` or its deadline (while the returned timer lives), which
/// also wakes the request where it waits (`queues`: for a graph, for another
/// user's encode of its image).
pub(crate) fn run_options(
    interrupt: &Interrupt,
    queues: Vec<Arc<dyn Wake>>,
) -> Result<(Arc<RunOptions>, Option<DeadlineTimer>), EngineError> {
    let options = Arc::new(RunOptions::new().map_err(ort_err("run options"))?);
    let terminated = options.clone();
    let timer = interrupt.on_stop(Arc::new(move || {
        let _ = terminated.terminate();
        for queue in &queues {
            queue.wake();
        }
    }));
    Ok((options, timer))
}

/// Whether a graph takes float16 activations (the `_fp16` variants), checked to be
/// consistent over all its float inputs.
pub(crate) fn float16_inputs(session: &Session, path: PathBuf) -> Result<bool, ModelError> {
    let mut kinds = session.inputs().iter().filter_map(|i| match i.dtype() {
        ValueType::Tensor { ty, .. } if *ty == TensorElementType::Float16 => Some(true),
        ValueType::Tensor { ty, .. } if *ty == TensorElementType::Float32 => Some(false),
        _ => None,
    });
    let first = kinds.next().unwrap_or(false);
    if kinds.any(|k| k != first) {
        return Err(ModelError::Onnx(OnnxError::Load {
            path,
            reason: "mixes float16 and float32 inputs".into(),
        }));
    }
    Ok(first)
}

/// A float tensor in the element type the graph takes.
pub(crate) fn float_tensor(
    stage: &'static str,
    shape: Vec<usize>,
    data: Vec<f32>,
    f16: bool,
) -> Result<DynValue, EngineError> {
    if f16 {
        let half: Vec<half::f16> = data.into_iter().map(half::f16::from_f32).collect();
        Ok(Tensor::from_array((shape, half))
            .map_err(ort_err(stage))?
            .into_dyn())
    } else {
        Ok(Tensor::from_array((shape, data))
            .map_err(ort_err(stage))?
            .into_dyn())
    }
}

/// Shape and values of a float32 or float16 tensor, as f32.
pub(crate) fn float_values(
    stage: &'static str,
    v: &DynValue,
) -> Result<(Vec<i64>, Vec<f32>), EngineError> {
    let mut out = Vec::new();
    let shape = float_values_into(stage, v, &mut out)?;
    Ok((shape, out))
}

/// Same, into a reused buffer (the decoder's logits, every token).
pub(crate) fn float_values_into(
    stage: &'static str,
    v: &DynValue,
    out: &mut Vec<f32>,
) -> Result<Vec<i64>, EngineError> {
    out.clear();
    if let Ok((shape, data)) = v.try_extract_tensor::<f32>() {
        out.extend_from_slice(data);
        return Ok(shape.iter().copied().collect());
    }
    let (shape, data) = v
        .try_extract_tensor::<half::f16>()
        .map_err(ort_err(stage))?;
    out.extend(data.iter().map(|x| x.to_f32()));
    Ok(shape.iter().copied().collect())
}

/// Rows `parents` of a tensor along its first axis, in its own element type.
pub(crate) fn gather_rows(v: &DynValue, parents: &[usize]) -> Result<DynValue, EngineError> {
    fn gather<T: ort::value::PrimitiveTensorElementType + Clone + std::fmt::Debug + 'static>(
        v: &DynValue,
        parents: &[usize],
    ) -> Option<Result<DynValue, EngineError>> {
        let (shape, data) = v.try_extract_tensor::<T>().ok()?;
        let mut dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        let row = data.len() / dims[0].max(1);
        let mut out = Vec::with_capacity(parents.len() * row);
        for &p in parents {
            out.extend_from_slice(&data[p * row..(p + 1) * row]);
        }
        dims[0] = parents.len();
        Some(
            Tensor::from_array((dims, out))
                .map(|t| t.into_dyn())
                .map_err(ort_err("decoder")),
        )
    }
    gather::<f32>(v, parents)
        .or_else(|| gather::<half::f16>(v, parents))
        .unwrap_or_else(|| Err(missing("decoder", "past key/value of a float type")))
}

pub(crate) fn check_shape(
    stage: &'static str,
    name: &str,
    v: &DynValue,
    want: &[i64],
) -> Result<(), EngineError> {
    let got: Vec<i64> = match v.dtype() {
        ValueType::Tensor { shape, .. } => shape.iter().copied().collect(),
        _ => vec![],
    };
    if got != want {
        return Err(EngineError::Output {
            stage,
            name: name.to_owned(),
            message: format!("shape {got:?}, expected {want:?}"),
        });
    }
    Ok(())
}

pub(crate) fn run_vision(
    session: &mut Session,
    pixels: Vec<f32>,
    shape: [usize; 4],
    f16: bool,
    run_options: &RunOptions,
) -> Result<Features, EngineError> {
    let input = float_tensor("vision encoder", shape.to_vec(), pixels, f16)?;
    let out = session
        .run_with_options(ort::inputs! {"pixel_values" => input}, run_options)
        .map_err(ort_err("vision encoder"))?;
    let v = out
        .get("image_features")
        .ok_or_else(|| missing("vision encoder", "image_features"))?;
    let (shape, data) = float_values("vision encoder", v)?;
    if shape.len() != 3 || shape[0] != 1 || data.iter().any(|x| !x.is_finite()) {
        return Err(EngineError::Output {
            stage: "vision encoder",
            name: "image_features".into(),
            message: format!("shape {shape:?} or non-finite values"),
        });
    }
    Ok(Features {
        data,
        tokens: shape[1] as usize,
        dim: shape[2] as usize,
    })
}

pub(crate) fn run_embed(
    session: &mut Session,
    ids: &[i64],
    rows: usize,
) -> Result<Vec<f32>, EngineError> {
    let cols = ids.len() / rows.max(1);
    let input =
        Tensor::from_array(([rows, cols], ids.to_vec())).map_err(ort_err("embed tokens"))?;
    let out = session
        .run(ort::inputs! {"input_ids" => input})
        .map_err(ort_err("embed tokens"))?;
    let v = out
        .get("inputs_embeds")
        .ok_or_else(|| missing("embed tokens", "inputs_embeds"))?;
    Ok(float_values("embed tokens", v)?.1)
}
