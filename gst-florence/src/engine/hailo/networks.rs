//! The split's two networks (text encoder, 32-window decoder) as HEFs on a
//! Hailo device, behind [`SplitNetworks`]: the device is opened on first use
//! (so a daemon that starts while hailo-ollama holds the chip still starts),
//! reopened after it was lost, and released on request (idle time).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::bridge::{Bridge, Device, Model, StreamInfo};
use super::bridge_search::BRIDGE_DIR_ENV;
use super::hailort_library::HAILORT_LIBRARY_ENV;
use super::split_networks::SplitNetworks;
use super::status::HailoError;
use crate::engine::error::EngineError;
/// The decoder HEF's inputs: encoder states, then the window of embeddings.
pub const DECODER_STATES_INPUT: &str = "florence2_transformer_decoder/input_layer1";
pub const DECODER_WINDOW_INPUT: &str = "florence2_transformer_decoder/input_layer2";

/// How the device is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HailoSettings {
    /// Virtual-device group: processes with the same non-default group share
    /// the chip on Hailo-10H ("SHARED"; never HailoRT's multi-process service).
    pub group_id: String,
    /// HailoRT scheduler priority, 0..=31 (16 is HailoRT's normal).
    pub scheduler_priority: u8,
    /// Bound on one network run (the reference uses 1000 ms per call).
    pub run_timeout: Duration,
    /// The libhailort to use; `None`: [`HAILORT_LIBRARY_ENV`], else the
    /// system's (see [`super::hailort_library::load`]).
    pub hailort_library: Option<PathBuf>,
    /// The one folder to take the bridge from; `None`: [`BRIDGE_DIR_ENV`],
    /// else [`super::bridge_search::bridge_dirs`]' search.
    pub bridge_dir: Option<PathBuf>,
}

impl Default for HailoSettings {
    fn default() -> Self {
        HailoSettings {
            group_id: "SHARED".into(),
            scheduler_priority: 16,
            run_timeout: Duration::from_millis(1000),
            hailort_library: None,
            bridge_dir: None,
        }
    }
}

impl HailoSettings {
    /// The bridge for this machine's HailoRT, from the places these settings
    /// (or the environment) name.
    pub fn bridge(&self) -> Result<Arc<Bridge>, HailoError> {
        let env = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let hailort = self
            .hailort_library
            .clone()
            .or_else(|| env(HAILORT_LIBRARY_ENV));
        let dir = self.bridge_dir.clone().or_else(|| env(BRIDGE_DIR_ENV));
        Bridge::load(hailort.as_deref(), dir.as_deref())
    }
}

/// The split's tensor sizes, from the model's config and embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitShapes {
    /// Encoder sequence: image tokens + prompt tokens (153 for base at 384).
    pub tokens: usize,
    pub d_model: usize,
    /// Decoder window (32).
    pub window: usize,
    pub vocab: usize,
}

/// Finds a HEF: `<dir>/hailo/<name>`, else `<dir>/<name>` (the flat layout of
/// Hailo's example).
pub fn hef_path(dir: &Path, name: &str) -> PathBuf {
    let nested = dir.join("hailo").join(name);
    if nested.exists() {
        nested
    } else if dir.join(name).exists() {
        dir.join(name)
    } else {
        nested
    }
}

struct Opened {
    // Fields drop in order: the models before the device.
    encoder: Model,
    decoder: Model,
    _device: Device,
}

/// The two HEFs on a Hailo device.
pub struct HailoNetworks {
    bridge: Arc<Bridge>,
    settings: HailoSettings,
    encoder_hef: PathBuf,
    decoder_hef: PathBuf,
    shapes: SplitShapes,
    opened: Option<Opened>,
}

impl HailoNetworks {
    /// Nothing is opened yet: see [`HailoNetworks::open`].
    pub fn new(
        bridge: Arc<Bridge>,
        encoder_hef: PathBuf,
        decoder_hef: PathBuf,
        shapes: SplitShapes,
        settings: HailoSettings,
    ) -> Self {
        HailoNetworks {
            bridge,
            settings,
            encoder_hef,
            decoder_hef,
            shapes,
            opened: None,
        }
    }

    pub fn bridge(&self) -> &Arc<Bridge> {
        &self.bridge
    }

    /// Whether the device is held now.
    pub fn is_open(&self) -> bool {
        self.opened.is_some()
    }

    /// Opens the device and loads both HEFs, checking their streams, unless
    /// that is done already.
    pub fn open(&mut self) -> Result<(), HailoError> {
        if self.opened.is_none() {
            let device = self.bridge.open_device(&self.settings.group_id)?;
            let priority = self.settings.scheduler_priority;
            let encoder = device.load_model(&self.encoder_hef, priority)?;
            let decoder = device.load_model(&self.decoder_hef, priority)?;
            let s = self.shapes;
            check_streams(
                &encoder,
                &[(None, s.tokens * s.d_model)],
                s.tokens * s.d_model,
            )?;
            check_streams(
                &decoder,
                &[
                    (Some(DECODER_STATES_INPUT), s.tokens * s.d_model),
                    (Some(DECODER_WINDOW_INPUT), s.window * s.d_model),
                ],
                s.window * s.vocab,
            )?;
            self.opened = Some(Opened {
                encoder,
                decoder,
                _device: device,
            });
        }
        Ok(())
    }

    /// Lets the chip go (other processes can take it); the next run reopens it.
    pub fn release(&mut self) {
        self.opened = None;
    }

    fn run(
        &mut self,
        network: &str,
        pick: fn(&mut Opened) -> &mut Model,
        inputs: &[(&str, &[f32])],
        out_len: usize,
    ) -> Result<Vec<f32>, HailoError> {
        self.open()?;
        // Only a stuck device bounds a run, not the request's deadline: a run
        // returns when its job is done anyway (HailoRT's job waits for it
        // before letting go of the buffers), so a deadline cut would only turn
        // a late request into a device error and a reopen. The split checks
        // the deadline between runs, one device pass apart.
        let timeout = self.settings.run_timeout;
        let Some(opened) = self.opened.as_mut() else {
            return Err(HailoError::NotOpen);
        };
        let model = pick(opened);
        let out_name = model.outputs()[0].name.clone();
        let mut out = vec![0f32; out_len];
        let result = model.run(network, inputs, &mut [(&out_name, &mut out)], timeout);
        if let Err(e) = &result
            && e.is_device_lost()
        {
            // A lost or stuck device is reopened by the next request.
            self.opened = None;
        }
        result.map(|()| out)
    }
}

/// Checks a loaded HEF against what the split feeds it: inputs by name (or the
/// only input), float32 frame sizes, one output.
fn check_streams(
    model: &Model,
    inputs: &[(Option<&str>, usize)],
    output_len: usize,
) -> Result<(), HailoError> {
    let bad = |problem: String| HailoError::Streams {
        hef: model.hef().to_path_buf(),
        problem,
    };
    let describe = |s: &[StreamInfo]| {
        s.iter()
            .map(|i| format!("{} ({} bytes)", i.name, i.frame_bytes))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if model.inputs().len() != inputs.len() {
        return Err(bad(format!(
            "has inputs [{}], the split feeds {}",
            describe(model.inputs()),
            inputs.len()
        )));
    }
    for (i, (name, len)) in inputs.iter().enumerate() {
        let info = match name {
            Some(name) => model.inputs().iter().find(|s| s.name == *name),
            None => model.inputs().get(i),
        };
        let Some(info) = info else {
            return Err(bad(format!(
                "has no input {}; it has [{}]",
                name.unwrap_or("?"),
                describe(model.inputs())
            )));
        };
        if info.frame_len() != *len {
            return Err(bad(format!(
                "input {} takes {} bytes, the split feeds {} ({} float32 values)",
                info.name,
                info.frame_bytes,
                len * 4,
                len
            )));
        }
    }
    match model.outputs() {
        [out] if out.frame_len() == output_len => Ok(()),
        [out] => Err(bad(format!(
            "output {} gives {} bytes, the split reads {} ({} float32 values)",
            out.name,
            out.frame_bytes,
            output_len * 4,
            output_len
        ))),
        other => Err(bad(format!(
            "has outputs [{}], the split reads one",
            describe(other)
        ))),
    }
}

impl SplitNetworks for HailoNetworks {
    fn text_encoder(&mut self, embeds: &[f32]) -> Result<Vec<f32>, EngineError> {
        let s = self.shapes;
        self.open()?;
        let input = match self.opened.as_ref() {
            Some(o) => o.encoder.inputs()[0].name.clone(),
            None => return Err(HailoError::NotOpen.into()),
        };
        Ok(self.run(
            "the text encoder",
            |o| &mut o.encoder,
            &[(&input, embeds)],
            s.tokens * s.d_model,
        )?)
    }

    fn decoder(&mut self, states: &[f32], window: &[f32]) -> Result<Vec<f32>, EngineError> {
        let s = self.shapes;
        Ok(self.run(
            "the decoder",
            |o| &mut o.decoder,
            &[
                (DECODER_STATES_INPUT, states),
                (DECODER_WINDOW_INPUT, window),
            ],
            s.window * s.vocab,
        )?)
    }
}
