//! The element's settings (from its properties) and the request they make.

use std::time::Duration;

use super::{Backend, Mode, TaskProp};
use crate::engine::hailo::DEFAULT_IDLE_RELEASE_S;
use crate::engine::hailo::HailoSettings;
use crate::engine::task::{InputKind, TaskInput, parse_loc_region};
use crate::engine::{ExecutionProvider, GenerationOptions, Request};

#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) model_dir: Option<String>,
    pub(super) variant: String,
    pub(super) ort_library: Option<String>,
    pub(super) task: TaskProp,
    pub(super) prompt: Option<String>,
    /// Parsed `region`, or why it could not be parsed (reported at start).
    pub(super) region: Result<Option<[f64; 4]>, String>,
    pub(super) vqa_template: Option<String>,
    pub(super) max_new_tokens: u32,
    pub(super) min_new_tokens: u32,
    pub(super) num_beams: u32,
    pub(super) temperature: f32,
    pub(super) seed: u64,
    pub(super) threads: u32,
    /// How much slower a decoder run shared with other streams' requests may
    /// be than this instance's run alone.
    pub(super) decode_slowdown: f64,
    /// Parsed `execution-provider`, or why it could not be parsed (reported at start).
    pub(super) execution_provider: Result<ExecutionProvider, String>,
    /// 0: the model's own resolution.
    pub(super) image_size: super::ImageSize,
    pub(super) backend: Backend,
    pub(super) hailo: HailoProps,
    pub(super) mode: Mode,
    pub(super) inference_interval_ms: u64,
    pub(super) skip_similar: f64,
    /// Live mode: how long EOS waits for the analysis in flight.
    pub(super) drain_timeout_ms: u32,
    /// Latency the element reports (ms); 0: the measured analysis time.
    pub(super) latency_ms: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model_dir: None,
            variant: String::new(),
            ort_library: None,
            task: TaskProp::Caption,
            prompt: None,
            region: Ok(None),
            vqa_template: None,
            max_new_tokens: 0,
            min_new_tokens: 0,
            num_beams: 0,
            temperature: 0.0,
            seed: 0,
            threads: 0,
            decode_slowdown: crate::engine::DEFAULT_DECODE_SLOWDOWN,
            execution_provider: Ok(ExecutionProvider::cpu()),
            image_size: super::ImageSize::Model,
            backend: Backend::Auto,
            hailo: HailoProps::default(),
            mode: Mode::Live,
            inference_interval_ms: 0,
            skip_similar: 0.0,
            drain_timeout_ms: 30_000,
            latency_ms: 0,
        }
    }
}

/// How the Hailo device is used (the `hailo-*` properties).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct HailoProps {
    pub(super) group_id: String,
    pub(super) priority: u32,
    pub(super) timeout_ms: u32,
    /// Seconds without captions before the device is released; 0: never.
    pub(super) idle_release_s: u32,
}

impl Default for HailoProps {
    fn default() -> Self {
        let d = HailoSettings::default();
        HailoProps {
            group_id: d.group_id,
            priority: u32::from(d.scheduler_priority),
            timeout_ms: d.run_timeout.as_millis() as u32,
            idle_release_s: DEFAULT_IDLE_RELEASE_S,
        }
    }
}

impl HailoProps {
    /// The engine's settings and idle time these properties make.
    pub(super) fn engine(&self) -> (HailoSettings, Option<Duration>) {
        let settings = HailoSettings {
            group_id: self.group_id.clone(),
            scheduler_priority: self.priority.min(u32::from(u8::MAX)) as u8,
            run_timeout: Duration::from_millis(u64::from(self.timeout_ms.max(1))),
            ..HailoSettings::default()
        };
        let idle =
            (self.idle_release_s > 0).then(|| Duration::from_secs(u64::from(self.idle_release_s)));
        (settings, idle)
    }
}

impl Settings {
    /// The properties' request, with the inputs the task does not take dropped:
    /// `prompt` and `region` stay set while the task changes during PLAYING.
    pub(super) fn request(&self) -> Request {
        without_untaken_inputs(self.request_as_set())
    }

    /// The properties as given (start-up refuses inputs the task does not take).
    pub(super) fn request_as_set(&self) -> Request {
        let nz = |v: u32| (v > 0).then_some(v as usize);
        Request {
            task: self.task.task(),
            input: TaskInput {
                text: self.prompt.clone().filter(|p| !p.trim().is_empty()),
                region: self.region.clone().ok().flatten(),
            },
            options: GenerationOptions {
                max_new_tokens: nz(self.max_new_tokens),
                min_new_tokens: nz(self.min_new_tokens),
                num_beams: nz(self.num_beams),
                temperature: (self.temperature > 0.0).then_some(self.temperature),
                seed: Some(self.seed),
                ..GenerationOptions::default()
            },
        }
    }
}

/// `req` without the property inputs (`prompt`, `region`) its task does not take.
/// A region task takes its region from `region`, or from `prompt` written in
/// Florence-2's `<loc_>` notation when `region` is not set.
pub(super) fn without_untaken_inputs(mut req: Request) -> Request {
    let loc_prompt = req.input.region.is_none()
        && req
            .input
            .text
            .as_deref()
            .and_then(parse_loc_region)
            .is_some();
    match req.task.input() {
        InputKind::Text => req.input.region = None,
        InputKind::Region if loc_prompt => {}
        InputKind::Region => req.input.text = None,
        InputKind::None => {
            req.input.text = None;
            req.input.region = None;
        }
    }
    req
}

#[derive(Debug, Default, Clone)]
pub(super) struct Stats {
    pub(super) last_caption: String,
    pub(super) captions_total: u64,
    pub(super) frames_skipped: u64,
    pub(super) last_latency_ms: f64,
}
