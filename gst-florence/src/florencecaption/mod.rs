//! `florencecaption`: Florence-2 on video buffers, results as buffer metadata.
//!
//! ```sh
//! # live captions drawn on the picture
//! gst-launch-1.0 v4l2src ! videoconvert ! \
//!   florencecaption name=f model-dir=/var/lib/hailo-florence/models/Florence-2-base-ft ! \
//!   videoconvert ! textoverlay name=o wait-text=false ! autovideosink \
//!   f.text_src ! queue ! o.text_sink
//! # every frame of a file, results on the bus
//! gst-launch-1.0 -m filesrc location=in.mp4 ! decodebin ! videoconvert ! \
//!   florencecaption mode=every-frame task=od model-dir=tests/fixtures/tiny-florence2 ! fakesink
//! ```
//!
//! Each result is attached to buffers as a `GstCustomMeta` named
//! `FlorenceCaptionMeta` (read it from C or Python with
//! `gst_buffer_get_custom_meta(buf, "FlorenceCaptionMeta")`) and posted on the
//! bus as an element message named `florence-caption`, both with the fields
//! `task`, `text`, `result` (JSON), `inference-time-ms`, `queue-wait-ms`, `model`, `frame-pts`,
//! `fresh`, `age-ms`, `token-count`, `image-width`, `image-height`,
//! `vision-cached`, `request` (what was asked) and `element`; the meta also
//! has `results` (every instance's result by element name). Every name and
//! field, with its type, is in the C header `include/gst/florence/florence.h`
//! (installed as `<gst/florence/florence.h>`). Scaling elements scale the
//! meta's coordinates (see `meta_transform.rs`). Each region of a result
//! (boxes, quad boxes, polygon groups) is also attached as a standard
//! `GstVideoRegionOfInterestMeta` (see `regions.rs`).
//!
//! In `mode=every-frame` an input buffer may carry its own request as a
//! `FlorenceRequestMeta` (its fields: [`crate::protocol::RequestField`]);
//! missing fields take the element's properties. Its result meta then
//! carries `request-id`, and a request that fails carries `error` and
//! `error-kind` ([`crate::protocol::ErrorKind`]) instead of a result. The action signal
//! `add-request(buffer, structure) -> buffer` attaches one (for bindings
//! whose custom-meta structure is a copy, as PyGObject's); the action signal
//! `cancel(request-id)` stops that request's running inference (`cancelled`).
//! The fields, their types and how they are read and written are
//! [`crate::protocol`]'s.
//!
//! Latency, QoS, EOS and model loading are described where they are done:
//! `latency.rs`, `qos.rs`, `worker.rs` (`drain`), `model.rs`.

use gst::glib;
use gst::prelude::*;

mod category;
mod every_frame;
mod frame;
mod hailo;
mod imp;
mod inference;
mod latency;
mod live_job;
mod meta_transform;
mod model;
mod ort_log;
mod properties;
mod qos;
mod regions;
mod request;
mod result;
mod settings;
mod similarity;
mod text_pad;
mod worker;

// The metas' and the message's names live with the fields they carry.
pub use crate::protocol::{MESSAGE_NAME, META_NAME, MODEL_MESSAGE_NAME, REQUEST_META_NAME};

glib::wrapper! {
    pub struct FlorenceCaption(ObjectSubclass<imp::FlorenceCaption>)
        @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

/// When frames are analysed.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstFlorenceCaptionMode")]
pub enum Mode {
    /// Buffers never wait for inference: a worker analyses the newest frame when
    /// it is free; every buffer carries the latest result and its age.
    #[enum_value(name = "Live: never hold buffers back", nick = "live")]
    Live = 0,
    /// Every buffer is analysed and leaves with its own result (offline files, florenced).
    #[enum_value(name = "Every frame: analyse each buffer", nick = "every-frame")]
    EveryFrame = 1,
}

/// The resolution frames are resized to for the vision encoder: the model's
/// own or one of the two Florence-2's position tables take (an enum so that
/// gst-inspect and a parser say which values exist).
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstFlorenceCaptionImageSize")]
pub enum ImageSize {
    #[enum_value(name = "The model's own (preprocessor_config.json)", nick = "model")]
    Model = 0,
    #[enum_value(name = "384x384: a quarter of the vision work", nick = "384")]
    Px384 = 384,
    #[enum_value(name = "768x768", nick = "768")]
    Px768 = 768,
}

impl ImageSize {
    /// The side in pixels, `None` for the model's own.
    pub fn pixels(self) -> Option<u32> {
        match self {
            ImageSize::Model => None,
            ImageSize::Px384 => Some(384),
            ImageSize::Px768 => Some(768),
        }
    }

    /// The value for a side in pixels (`None`: the model's own); `None` for a
    /// side the element does not take.
    pub fn from_pixels(side: Option<u32>) -> Option<ImageSize> {
        match side {
            None => Some(ImageSize::Model),
            Some(384) => Some(ImageSize::Px384),
            Some(768) => Some(ImageSize::Px768),
            Some(_) => None,
        }
    }
}

/// Which inference backend to use.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstFlorenceCaptionBackend")]
pub enum Backend {
    #[enum_value(name = "Auto: Hailo if available, else ONNX Runtime", nick = "auto")]
    Auto = 0,
    #[enum_value(name = "ONNX Runtime on the CPU", nick = "onnx")]
    Onnx = 1,
    #[enum_value(name = "Hailo-10H NPU", nick = "hailo")]
    Hailo = 2,
}

/// The property's value names the engine's choice (same nicks).
impl From<Backend> for crate::engine::BackendChoice {
    fn from(b: Backend) -> Self {
        match b {
            Backend::Auto => crate::engine::BackendChoice::Auto,
            Backend::Onnx => crate::engine::BackendChoice::Onnx,
            Backend::Hailo => crate::engine::BackendChoice::Hailo,
        }
    }
}

/// The Florence-2 task, as an element property.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstFlorenceCaptionTask")]
pub enum TaskProp {
    #[enum_value(name = "<CAPTION>", nick = "caption")]
    Caption = 0,
    #[enum_value(name = "<DETAILED_CAPTION>", nick = "detailed-caption")]
    DetailedCaption,
    #[enum_value(name = "<MORE_DETAILED_CAPTION>", nick = "more-detailed-caption")]
    MoreDetailedCaption,
    #[enum_value(name = "<OCR>", nick = "ocr")]
    Ocr,
    #[enum_value(name = "<OCR_WITH_REGION>", nick = "ocr-with-region")]
    OcrWithRegion,
    #[enum_value(name = "<OD>", nick = "od")]
    Od,
    #[enum_value(name = "<DENSE_REGION_CAPTION>", nick = "dense-region-caption")]
    DenseRegionCaption,
    #[enum_value(name = "<REGION_PROPOSAL>", nick = "region-proposal")]
    RegionProposal,
    #[enum_value(
        name = "<CAPTION_TO_PHRASE_GROUNDING> (prompt: the caption)",
        nick = "caption-to-phrase-grounding"
    )]
    CaptionToPhraseGrounding,
    #[enum_value(
        name = "<REFERRING_EXPRESSION_SEGMENTATION> (prompt: the expression)",
        nick = "referring-expression-segmentation"
    )]
    ReferringExpressionSegmentation,
    #[enum_value(
        name = "<OPEN_VOCABULARY_DETECTION> (prompt: the category)",
        nick = "open-vocabulary-detection"
    )]
    OpenVocabularyDetection,
    #[enum_value(name = "VQA (prompt: the question)", nick = "vqa")]
    Vqa,
    #[enum_value(
        name = "<REGION_TO_SEGMENTATION> (region: the box)",
        nick = "region-to-segmentation"
    )]
    RegionToSegmentation,
    #[enum_value(
        name = "<REGION_TO_CATEGORY> (region: the box)",
        nick = "region-to-category"
    )]
    RegionToCategory,
    #[enum_value(
        name = "<REGION_TO_DESCRIPTION> (region: the box)",
        nick = "region-to-description"
    )]
    RegionToDescription,
    #[enum_value(name = "<REGION_TO_OCR> (region: the box)", nick = "region-to-ocr")]
    RegionToOcr,
}

impl TaskProp {
    pub fn task(self) -> crate::engine::task::Task {
        use crate::engine::task::Task;
        match self {
            TaskProp::Caption => Task::Caption,
            TaskProp::DetailedCaption => Task::DetailedCaption,
            TaskProp::MoreDetailedCaption => Task::MoreDetailedCaption,
            TaskProp::Ocr => Task::Ocr,
            TaskProp::OcrWithRegion => Task::OcrWithRegion,
            TaskProp::Od => Task::Od,
            TaskProp::DenseRegionCaption => Task::DenseRegionCaption,
            TaskProp::RegionProposal => Task::RegionProposal,
            TaskProp::CaptionToPhraseGrounding => Task::CaptionToPhraseGrounding,
            TaskProp::ReferringExpressionSegmentation => Task::ReferringExpressionSegmentation,
            TaskProp::OpenVocabularyDetection => Task::OpenVocabularyDetection,
            TaskProp::Vqa => Task::Vqa,
            TaskProp::RegionToSegmentation => Task::RegionToSegmentation,
            TaskProp::RegionToCategory => Task::RegionToCategory,
            TaskProp::RegionToDescription => Task::RegionToDescription,
            TaskProp::RegionToOcr => Task::RegionToOcr,
        }
    }
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    meta_transform::register();
    if !gst::meta::CustomMeta::is_registered(REQUEST_META_NAME) {
        gst::meta::CustomMeta::register(REQUEST_META_NAME, &[]);
    }
    Mode::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    Backend::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    ImageSize::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    TaskProp::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(
        Some(plugin),
        "florencecaption",
        gst::Rank::NONE,
        FlorenceCaption::static_type(),
    )
}
