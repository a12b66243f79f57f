//! The element's properties: their specs and how they read and write [`Settings`].

use gst::glib;
use gst::prelude::*;

use super::category::CAT;
use super::settings::{HailoProps, Settings, Stats};

/// Read-only property: where captions run and why.
pub(super) const BACKEND_REASON_PROPERTY: &str = "backend-reason";
use super::{Backend, ImageSize, Mode, TaskProp};
use crate::engine::ExecutionProvider;
use crate::engine::task::parse_region;

/// Every property, declared once (defaults from `Settings::default()`).
pub(super) fn specs() -> Vec<glib::ParamSpec> {
    let d = Settings::default();
    vec![
        glib::ParamSpecString::builder("model-dir")
            .nick("Model directory")
            .blurb("Florence-2 model directory in the onnx-community layout (onnx/*.onnx, config.json, tokenizer.json, ...)")
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("variant")
            .nick("Model variant")
            .blurb("Graph file suffix of a quantized variant: \"\" (fp32), _quantized, _int8, _uint8, ...")
            .default_value(Some(""))
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("ort-library")
            .nick("ONNX Runtime library")
            .blurb("Path of libonnxruntime.so; unset: ORT_DYLIB_PATH, the project folder, the system path")
            .mutable_ready()
            .build(),
        glib::ParamSpecEnum::builder_with_default("task", d.task)
            .nick("Task")
            .blurb("Florence-2 task; tasks marked (prompt: ...) take the prompt property as input. Can change while PLAYING")
            .mutable_playing()
            .build(),
        glib::ParamSpecString::builder("prompt")
            .nick("Prompt")
            .blurb("Text input of the task: the question for vqa, the phrase for grounding, the category for open-vocabulary detection, or a region-to-* task's region as <loc_x1><loc_y1><loc_x2><loc_y2> (bins 0-999)")
            .mutable_playing()
            .build(),
        glib::ParamSpecString::builder("region")
            .nick("Region")
            .blurb("Box input of the region-to-* tasks: \"x1,y1,x2,y2\" in pixels of the frame")
            .mutable_playing()
            .build(),
        glib::ParamSpecString::builder("vqa-template")
            .nick("VQA prompt template")
            .blurb("Prompt of the vqa task with a {question} placeholder; unset: the model's (florence.json, else \"<VQA>{question}\")")
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("max-new-tokens")
            .nick("Maximum new tokens")
            .blurb("Longest generation in tokens; 0 takes the model's default (generation_config.json, else 1024)")
            .maximum(4096)
            .default_value(d.max_new_tokens)
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder("min-new-tokens")
            .nick("Minimum new tokens")
            .blurb("End-of-sequence is suppressed before this many tokens")
            .maximum(4096)
            .default_value(d.min_new_tokens)
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder("num-beams")
            .nick("Beams")
            .blurb("Beam search width; 1 is greedy; 0 takes the model's default (3 for Florence-2)")
            .maximum(16)
            .default_value(d.num_beams)
            .mutable_playing()
            .build(),
        glib::ParamSpecFloat::builder("temperature")
            .nick("Temperature")
            .blurb("0: deterministic decoding; > 0: sampling at this temperature (reproducible with seed)")
            .minimum(0.0)
            .maximum(2.0)
            .default_value(d.temperature)
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt64::builder("seed")
            .nick("Seed")
            .blurb("Random seed for sampling")
            .default_value(d.seed)
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder("threads")
            .nick("Threads")
            .blurb("ONNX Runtime threads: 0 = the process's one thread pool (one thread per physical core, shared by every graph, model and stream); N = each of this model's graphs gets N threads of its own, outside that budget (more than the CPUs the process may use is capped at that number, with a warning)")
            .maximum(256)
            .default_value(d.threads)
            .mutable_ready()
            .build(),
        glib::ParamSpecDouble::builder("decode-slowdown")
            .nick("Decode slowdown")
            .blurb("How much slower a decoder run may get from decoding this instance's request together with other requests on the same model (other instances, florenced workers): a request joins the model's decode batch only if the batch's run would take at most this many times its run alone, and its own run at most each member's bound; else it waits for members to leave. While other requests on the model encode their images, the batch waits for them before its next step, each request at most (decode-slowdown - 1) times its decoding alone in all. 1 = never share a run, never held")
            .minimum(1.0)
            .maximum(1000.0)
            .default_value(d.decode_slowdown)
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("execution-provider")
            .nick("Execution provider")
            .blurb(&format!(
                "ONNX Runtime execution provider of the ONNX backend: {}, or ONNX Runtime's own name (CUDAExecutionProvider); any but cpu must be in the loaded ONNX Runtime library, else the load fails naming what it offers",
                ExecutionProvider::short_names().join(", ")
            ))
            .default_value(Some("cpu"))
            .mutable_ready()
            .build(),
        glib::ParamSpecEnum::builder_with_default("image-size", d.image_size)
            .nick("Image size")
            .blurb("Input resolution the frames are resized to: 768, 384 (a quarter of the vision work) or the model's own")
            .mutable_ready()
            .build(),
        glib::ParamSpecEnum::builder_with_default("backend", d.backend)
            .nick("Backend")
            .blurb("Inference backend")
            .mutable_ready()
            .build(),
        glib::ParamSpecString::builder("hailo-group-id")
            .nick("Hailo group id")
            .blurb("Virtual-device group the Hailo device is opened in: processes with the same group share a Hailo-10H (HailoRT's default group UNIQUE takes it alone)")
            .default_value(Some(d.hailo.group_id.as_str()))
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("hailo-priority")
            .nick("Hailo scheduler priority")
            .blurb("HailoRT scheduler priority of the split's networks, 0-31 (16 is HailoRT's normal)")
            .maximum(31)
            .default_value(d.hailo.priority)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("hailo-timeout")
            .nick("Hailo run timeout (ms)")
            .blurb("Bound on one network run on the Hailo device, in milliseconds (a request's deadline bounds it further); a run past it fails as a device error")
            .minimum(1)
            .maximum(600_000)
            .default_value(d.hailo.timeout_ms)
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt::builder("hailo-idle-release")
            .nick("Hailo idle release (s)")
            .blurb("Seconds without captions after which the Hailo device is released, so other processes (hailo-ollama) can take turns; the next caption reopens it. 0: keep it")
            .default_value(d.hailo.idle_release_s)
            .mutable_ready()
            .build(),
        glib::ParamSpecEnum::builder_with_default("mode", d.mode)
            .nick("Mode")
            .blurb("live: buffers never wait, the newest frame is analysed when the worker is free; every-frame: each buffer is analysed before it leaves")
            .mutable_ready()
            .build(),
        glib::ParamSpecUInt64::builder("inference-interval")
            .nick("Inference interval (ms)")
            .blurb("Live mode: minimum time between the starts of two analyses, in milliseconds (like latency and drain-timeout: analyses take hundreds of ms to seconds, a scale people type on a gst-launch line; rtpjitterbuffer's and whispertranscriber's latency are ms too)")
            .default_value(d.inference_interval_ms)
            .mutable_playing()
            .build(),
        glib::ParamSpecDouble::builder("skip-similar")
            .nick("Skip similar frames")
            .blurb("Live mode: skip a frame whose 32x32 grayscale thumbnail differs from the last analysed one by less than this mean absolute difference (0-255 levels; about 2-4 ignores sensor noise); 0 analyses every frame it can")
            .minimum(0.0)
            .maximum(255.0)
            .default_value(d.skip_similar)
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder("drain-timeout")
            .nick("Drain timeout (ms)")
            .blurb("Live mode: at EOS, how long (milliseconds) to wait for the analysis in flight so its result (message, text_src) goes out before EOS; past it the analysis is cancelled. 0: drop it")
            .default_value(d.drain_timeout_ms)
            .mutable_playing()
            .build(),
        glib::ParamSpecUInt::builder("latency")
            .nick("Latency (ms)")
            .blurb("Latency the element adds, in milliseconds, reported in the LATENCY query (every-frame mode: on src and text_src; live mode: on text_src only, video never waits); an analysis longer than this delivers late results. 0: the analysis time measured so far (plus a quarter), announced with a latency message when it grows")
            .default_value(d.latency_ms)
            .mutable_playing()
            .build(),
        glib::ParamSpecString::builder("last-caption")
            .nick("Last caption")
            .blurb("Text of the latest result")
            .read_only()
            .build(),
        glib::ParamSpecUInt64::builder("captions-total")
            .nick("Results")
            .blurb("Number of results produced")
            .read_only()
            .build(),
        glib::ParamSpecUInt64::builder("frames-skipped")
            .nick("Frames skipped")
            .blurb("Live mode: frames passed through without being analysed")
            .read_only()
            .build(),
        glib::ParamSpecDouble::builder("last-latency-ms")
            .nick("Last latency (ms)")
            .blurb("Inference time of the latest result, in milliseconds")
            .minimum(0.0)
            .maximum(86_400_000.0)
            .read_only()
            .build(),
        super::hailo::device_property(),
        glib::ParamSpecString::builder(BACKEND_REASON_PROPERTY)
            .nick("Backend reason")
            .blurb("Where captions run and why (backend=auto's choice and its cause); empty until the model is loaded")
            .read_only()
            .build(),
    ]
}

/// Writes property `pspec` of `element` into `s`.
pub(super) fn set(
    s: &mut Settings,
    element: &gst::Element,
    value: &glib::Value,
    pspec: &glib::ParamSpec,
) {
    match pspec.name() {
        "model-dir" => s.model_dir = value.get().unwrap_or(None),
        "variant" => {
            s.variant = value
                .get::<Option<String>>()
                .ok()
                .flatten()
                .unwrap_or_default()
        }
        "ort-library" => s.ort_library = value.get().unwrap_or(None),
        "task" => s.task = value.get().unwrap_or(TaskProp::Caption),
        "prompt" => s.prompt = value.get().unwrap_or(None),
        "vqa-template" => s.vqa_template = value.get().unwrap_or(None),
        "region" => {
            let text: Option<String> = value.get().unwrap_or(None);
            s.region = match text.as_deref().map(str::trim) {
                None | Some("") => Ok(None),
                Some(t) => parse_region(t).map(Some),
            };
            if let Err(e) = &s.region {
                gst::warning!(CAT, obj = element, "{e}; the region is ignored");
            }
        }
        "max-new-tokens" => s.max_new_tokens = value.get().unwrap_or(0),
        "min-new-tokens" => s.min_new_tokens = value.get().unwrap_or(0),
        "num-beams" => s.num_beams = value.get().unwrap_or(0),
        "temperature" => s.temperature = value.get().unwrap_or(0.0),
        "seed" => s.seed = value.get().unwrap_or(0),
        "threads" => s.threads = value.get().unwrap_or(0),
        "decode-slowdown" => {
            s.decode_slowdown = value
                .get()
                .unwrap_or(crate::engine::DEFAULT_DECODE_SLOWDOWN)
        }
        "execution-provider" => {
            let text: Option<String> = value.get().unwrap_or(None);
            s.execution_provider = match text.as_deref().map(str::trim) {
                None | Some("") => Ok(ExecutionProvider::cpu()),
                Some(t) => t.parse().map_err(|e| format!("execution-provider: {e}")),
            };
            if let Err(e) = &s.execution_provider {
                gst::warning!(CAT, obj = element, "{e}; the element will not start");
            }
        }
        "image-size" => s.image_size = value.get().unwrap_or(ImageSize::Model),
        "backend" => s.backend = value.get().unwrap_or(Backend::Auto),
        "hailo-group-id" => {
            s.hailo.group_id = value
                .get::<Option<String>>()
                .ok()
                .flatten()
                .filter(|g| !g.is_empty())
                .unwrap_or_else(|| HailoProps::default().group_id)
        }
        "hailo-priority" => {
            s.hailo.priority = value.get().unwrap_or(HailoProps::default().priority)
        }
        "hailo-timeout" => {
            s.hailo.timeout_ms = value.get().unwrap_or(HailoProps::default().timeout_ms)
        }
        "hailo-idle-release" => {
            s.hailo.idle_release_s = value.get().unwrap_or(HailoProps::default().idle_release_s)
        }
        "mode" => s.mode = value.get().unwrap_or(Mode::Live),
        "inference-interval" => s.inference_interval_ms = value.get().unwrap_or(0),
        "skip-similar" => s.skip_similar = value.get().unwrap_or(0.0),
        "drain-timeout" => s.drain_timeout_ms = value.get().unwrap_or(0),
        "latency" => s.latency_ms = value.get().unwrap_or(0),
        other => gst::warning!(CAT, obj = element, "unknown property {other}"),
    }
}

/// Property `pspec` as `s` and `stats` have it (the ones about the loaded
/// model are the element's).
pub(super) fn value(s: &Settings, stats: &Stats, pspec: &glib::ParamSpec) -> glib::Value {
    match pspec.name() {
        "model-dir" => s.model_dir.to_value(),
        "variant" => s.variant.to_value(),
        "ort-library" => s.ort_library.to_value(),
        "task" => s.task.to_value(),
        "prompt" => s.prompt.to_value(),
        "vqa-template" => s.vqa_template.to_value(),
        "region" => s
            .region
            .clone()
            .ok()
            .flatten()
            .map(|r| format!("{},{},{},{}", r[0], r[1], r[2], r[3]))
            .to_value(),
        "max-new-tokens" => s.max_new_tokens.to_value(),
        "min-new-tokens" => s.min_new_tokens.to_value(),
        "num-beams" => s.num_beams.to_value(),
        "temperature" => s.temperature.to_value(),
        "seed" => s.seed.to_value(),
        "threads" => s.threads.to_value(),
        "decode-slowdown" => s.decode_slowdown.to_value(),
        "execution-provider" => s
            .execution_provider
            .as_ref()
            .map_or_else(|_| None, |p| Some(p.to_string()))
            .to_value(),
        "image-size" => s.image_size.to_value(),
        "backend" => s.backend.to_value(),
        "hailo-group-id" => s.hailo.group_id.to_value(),
        "hailo-priority" => s.hailo.priority.to_value(),
        "hailo-timeout" => s.hailo.timeout_ms.to_value(),
        "hailo-idle-release" => s.hailo.idle_release_s.to_value(),
        "mode" => s.mode.to_value(),
        "inference-interval" => s.inference_interval_ms.to_value(),
        "skip-similar" => s.skip_similar.to_value(),
        "drain-timeout" => s.drain_timeout_ms.to_value(),
        "latency" => s.latency_ms.to_value(),
        "last-caption" => stats.last_caption.to_value(),
        "captions-total" => stats.captions_total.to_value(),
        "frames-skipped" => stats.frames_skipped.to_value(),
        "last-latency-ms" => stats.last_latency_ms.to_value(),
        _ => glib::Value::from_type(pspec.value_type()),
    }
}
