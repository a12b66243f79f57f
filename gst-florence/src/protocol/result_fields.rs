//! The result the element answers with: the fields of `FlorenceCaptionMeta`
//! and of the `florence-caption` message (the `FLORENCE_FIELD_*` of
//! florence.h), typed, and their encoding both ways: the element encodes,
//! applications (florenced) decode.

use std::fmt;

use gst::glib;

use super::error_kind::{ErrorKind, UnknownErrorKind};
use super::request_fields::{InvalidRequest, RequestParams};
use super::task_result::{self, BadTaskResult};
use crate::engine::postprocess::TaskResult;

/// A field of a result structure (meta or message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResultField {
    /// string: the task token, e.g. `<CAPTION>`.
    Task,
    /// string: the text, or the labels joined.
    Text,
    /// string: the post-processed result, JSON ([`task_result`]).
    Result,
    /// double
    InferenceTimeMs,
    /// string: the model directory's name.
    Model,
    /// guint64: PTS of the analysed frame (`u64::MAX`: none).
    FramePts,
    /// boolean: the first buffer to carry this result.
    Fresh,
    /// double: time since the result was produced.
    AgeMs,
    /// guint64
    TokenCount,
    /// guint: coordinates are in this frame size.
    ImageWidth,
    /// guint
    ImageHeight,
    /// boolean: the vision pass was reused.
    VisionCached,
    /// GstStructure `FlorenceRequest`: what was asked ([`RequestParams`]).
    Request,
    /// string: the florencecaption instance's name.
    Element,
    /// GstStructure: element name -> that instance's result (meta only).
    Results,
    /// string: the request's id (per-buffer requests).
    RequestId,
    /// string: why a per-buffer request gave no result.
    Error,
    /// string: one of [`ErrorKind`].
    ErrorKind,
    /// double: of `inference-time-ms`, the time the request queued for its
    /// turn on a model shared with other streams.
    QueueWaitMs,
    /// guint: the most requests decoded together in one decoder run with
    /// this one (1: alone; 0: the Hailo split, whose decoder is not ours).
    DecodeBatch,
}

impl ResultField {
    /// Every field, in florence.h's order.
    pub const ALL: [ResultField; 20] = [
        ResultField::Task,
        ResultField::Text,
        ResultField::Result,
        ResultField::InferenceTimeMs,
        ResultField::Model,
        ResultField::FramePts,
        ResultField::Fresh,
        ResultField::AgeMs,
        ResultField::TokenCount,
        ResultField::ImageWidth,
        ResultField::ImageHeight,
        ResultField::VisionCached,
        ResultField::Request,
        ResultField::Element,
        ResultField::Results,
        ResultField::RequestId,
        ResultField::Error,
        ResultField::ErrorKind,
        ResultField::QueueWaitMs,
        ResultField::DecodeBatch,
    ];

    /// The field's name in the structure.
    pub fn name(self) -> &'static str {
        match self {
            ResultField::Task => "task",
            ResultField::Text => "text",
            ResultField::Result => "result",
            ResultField::InferenceTimeMs => "inference-time-ms",
            ResultField::Model => "model",
            ResultField::FramePts => "frame-pts",
            ResultField::Fresh => "fresh",
            ResultField::AgeMs => "age-ms",
            ResultField::TokenCount => "token-count",
            ResultField::ImageWidth => "image-width",
            ResultField::ImageHeight => "image-height",
            ResultField::VisionCached => "vision-cached",
            ResultField::Request => "request",
            ResultField::Element => "element",
            ResultField::Results => "results",
            ResultField::RequestId => "request-id",
            ResultField::Error => "error",
            ResultField::ErrorKind => "error-kind",
            ResultField::QueueWaitMs => "queue-wait-ms",
            ResultField::DecodeBatch => "decode-batch",
        }
    }

    /// The request id a result structure carries, if any.
    pub fn request_id_of(s: &gst::StructureRef) -> Option<String> {
        s.get::<String>(ResultField::RequestId.name()).ok()
    }
}

impl fmt::Display for ResultField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One result, as the meta and the message carry it.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionResult {
    /// The task token.
    pub task: String,
    pub text: String,
    pub result: TaskResult,
    pub inference_ms: f64,
    /// Of `inference_ms`, queued behind other users of a shared model.
    pub queue_wait_ms: f64,
    /// The most requests decoded together in one run with it (1: alone).
    pub decode_batch: u32,
    pub model: String,
    /// Nanoseconds; `None` when the frame had no PTS.
    pub frame_pts: Option<u64>,
    pub fresh: bool,
    pub age_ms: f64,
    pub token_count: u64,
    /// Width and height: the result's coordinates are in this frame size.
    pub image_size: [u32; 2],
    pub vision_cached: bool,
    pub asked: RequestParams,
    /// The per-buffer request's id.
    pub request_id: Option<String>,
    /// The element instance that produced it (set when it is attached or posted).
    pub element: Option<String>,
}

/// A per-buffer request that gave no result.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub request_id: String,
    pub kind: ErrorKind,
    pub message: String,
}

/// What the element answered a per-buffer request with.
#[derive(Debug, Clone, PartialEq)]
pub enum ElementAnswer {
    Result(Box<CaptionResult>),
    Failure(Failure),
}

/// A result structure that does not hold what the protocol says.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("the result has no {0} field")]
    Missing(ResultField),
    #[error("the result's {field} must be {expected}")]
    WrongType {
        field: ResultField,
        expected: &'static str,
    },
    #[error(transparent)]
    Result(#[from] BadTaskResult),
    #[error("the result's request: {0}")]
    Asked(#[from] InvalidRequest),
    #[error(transparent)]
    Kind(#[from] UnknownErrorKind),
}

/// A required field of type `T`.
fn get<'a, T: glib::value::FromValue<'a>>(
    s: &'a gst::StructureRef,
    field: ResultField,
    expected: &'static str,
) -> Result<T, DecodeError> {
    s.get::<T>(field.name()).map_err(|e| match e {
        gst::structure::GetError::FieldNotFound { .. } => DecodeError::Missing(field),
        gst::structure::GetError::ValueGetError { .. } => {
            DecodeError::WrongType { field, expected }
        }
    })
}

impl CaptionResult {
    /// This result as a structure named `name` (the meta's or the message's).
    pub fn encode(&self, name: &str) -> gst::Structure {
        let mut s = gst::Structure::builder(name)
            .field(ResultField::Task.name(), &self.task)
            .field(ResultField::Text.name(), &self.text)
            .field(
                ResultField::Result.name(),
                task_result::encode(&self.result),
            )
            .field(ResultField::InferenceTimeMs.name(), self.inference_ms)
            .field(ResultField::QueueWaitMs.name(), self.queue_wait_ms)
            .field(ResultField::DecodeBatch.name(), self.decode_batch)
            .field(ResultField::Model.name(), &self.model)
            .field(
                ResultField::FramePts.name(),
                self.frame_pts.unwrap_or(u64::MAX),
            )
            .field(ResultField::Fresh.name(), self.fresh)
            .field(ResultField::AgeMs.name(), self.age_ms)
            .field(ResultField::TokenCount.name(), self.token_count)
            .field(ResultField::ImageWidth.name(), self.image_size[0])
            .field(ResultField::ImageHeight.name(), self.image_size[1])
            .field(ResultField::VisionCached.name(), self.vision_cached)
            .field(ResultField::Request.name(), self.asked.to_asked())
            .build();
        if let Some(id) = &self.request_id {
            s.set(ResultField::RequestId.name(), id);
        }
        if let Some(e) = &self.element {
            s.set(ResultField::Element.name(), e);
        }
        s
    }

    /// Reads a result structure back.
    pub fn decode(s: &gst::StructureRef) -> Result<CaptionResult, DecodeError> {
        let json: String = get(s, ResultField::Result, "a string")?;
        let asked: gst::Structure = get(s, ResultField::Request, "a structure")?;
        let frame_pts: u64 = get(s, ResultField::FramePts, "a guint64")?;
        Ok(CaptionResult {
            task: get(s, ResultField::Task, "a string")?,
            text: get(s, ResultField::Text, "a string")?,
            result: task_result::decode(&json)?,
            inference_ms: get(s, ResultField::InferenceTimeMs, "a double")?,
            queue_wait_ms: get(s, ResultField::QueueWaitMs, "a double")?,
            decode_batch: get(s, ResultField::DecodeBatch, "a guint")?,
            model: get(s, ResultField::Model, "a string")?,
            frame_pts: (frame_pts != u64::MAX).then_some(frame_pts),
            fresh: get(s, ResultField::Fresh, "a boolean")?,
            age_ms: get(s, ResultField::AgeMs, "a double")?,
            token_count: get(s, ResultField::TokenCount, "a guint64")?,
            image_size: [
                get(s, ResultField::ImageWidth, "a guint")?,
                get(s, ResultField::ImageHeight, "a guint")?,
            ],
            vision_cached: get(s, ResultField::VisionCached, "a boolean")?,
            asked: RequestParams::from_asked(&asked)?,
            request_id: ResultField::request_id_of(s),
            element: s.get::<String>(ResultField::Element.name()).ok(),
        })
    }
}

impl Failure {
    /// This failure as a structure named `name` (the result meta's).
    pub fn encode(&self, name: &str) -> gst::Structure {
        gst::Structure::builder(name)
            .field(ResultField::RequestId.name(), &self.request_id)
            .field(ResultField::Error.name(), &self.message)
            .field(ResultField::ErrorKind.name(), self.kind.name())
            .build()
    }

    /// Reads a failure back.
    pub fn decode(s: &gst::StructureRef) -> Result<Failure, DecodeError> {
        let kind: String = get(s, ResultField::ErrorKind, "a string")?;
        Ok(Failure {
            request_id: get(s, ResultField::RequestId, "a string")?,
            kind: kind.parse()?,
            message: get(s, ResultField::Error, "a string")?,
        })
    }
}

impl ElementAnswer {
    /// A result meta read back: a failure when it carries `error`.
    pub fn decode(s: &gst::StructureRef) -> Result<ElementAnswer, DecodeError> {
        if s.has_field(ResultField::Error.name()) {
            Failure::decode(s).map(ElementAnswer::Failure)
        } else {
            CaptionResult::decode(s).map(|r| ElementAnswer::Result(Box::new(r)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::task::Task;

    fn caption() -> CaptionResult {
        CaptionResult {
            task: "<OD>".into(),
            text: "car".into(),
            result: TaskResult::Boxes {
                bboxes: vec![[33.6, 159.6, 596.8, 371.8]],
                labels: vec!["car".into()],
            },
            inference_ms: 12.5,
            queue_wait_ms: 1.5,
            decode_batch: 3,
            model: "tiny".into(),
            frame_pts: Some(40_000_000),
            fresh: true,
            age_ms: 0.25,
            token_count: 7,
            image_size: [640, 480],
            vision_cached: false,
            asked: RequestParams {
                task: Some(Task::Od),
                num_beams: Some(2),
                ..RequestParams::default()
            },
            request_id: Some("r.0".into()),
            element: Some("f".into()),
        }
    }

    #[test]
    fn a_result_reads_back_as_written() {
        gst::init().unwrap();
        let r = caption();
        let s = r.encode("FlorenceCaptionMeta");
        assert_eq!(
            ElementAnswer::decode(&s),
            Ok(ElementAnswer::Result(Box::new(r.clone())))
        );
        let none = CaptionResult {
            frame_pts: None,
            request_id: None,
            element: None,
            ..r
        };
        assert_eq!(CaptionResult::decode(&none.encode("m")), Ok(none));
    }

    #[test]
    fn a_failure_reads_back_as_written() {
        gst::init().unwrap();
        for kind in ErrorKind::ALL {
            let f = Failure {
                request_id: "x".into(),
                kind,
                message: "why".into(),
            };
            assert_eq!(
                ElementAnswer::decode(&f.encode("m")),
                Ok(ElementAnswer::Failure(f))
            );
        }
    }

    #[test]
    fn a_malformed_result_is_an_error() {
        gst::init().unwrap();
        let mut s = caption().encode("m");
        s.remove_field("token-count");
        assert_eq!(
            CaptionResult::decode(&s),
            Err(DecodeError::Missing(ResultField::TokenCount))
        );
        let mut s = caption().encode("m");
        s.set("image-width", "wide");
        assert!(matches!(
            CaptionResult::decode(&s),
            Err(DecodeError::WrongType { .. })
        ));
        let mut s = Failure {
            request_id: "x".into(),
            kind: ErrorKind::Cancelled,
            message: "m".into(),
        }
        .encode("m");
        s.set("error-kind", "gone");
        assert!(matches!(
            ElementAnswer::decode(&s),
            Err(DecodeError::Kind(_))
        ));
    }
}
