//! The request an application attaches to a buffer (`FlorenceRequestMeta`,
//! the `FLORENCE_REQUEST_*` fields of florence.h) and, without its id and
//! deadline, what a result says was asked (its `request` field).
//!
//! Decoding is strict, and it is the element's validation of a per-buffer
//! request (applications are untrusted): a field the element does not know,
//! one of the wrong type or out of range, an unknown task or a malformed
//! region makes the whole request invalid (`invalid-request`), never
//! silently ignored. A count may be any GLib integer type or an integral
//! double ([`super::values`]). florenced validates its own HTTP fields at
//! its edge (`florenced/src/http/request.rs`) and does not repeat these checks.

use std::fmt;

use gst::glib;

use super::names::{ASKED_NAME, REQUEST_META_NAME};
use super::values::{integer, number};
use crate::engine::Request;
use crate::engine::task::{Task, parse_region};

/// A field of a request structure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestField {
    /// string: echoed as the result's `request-id`.
    Id,
    /// string: a task token (`<OD>`) or name (`od`).
    Task,
    /// string: the task's text input.
    Text,
    /// 4 numbers (array or list) or "x1,y1,x2,y2", image pixels.
    Region,
    MaxNewTokens,
    MinNewTokens,
    NumBeams,
    /// number >= 0; 0: deterministic.
    Temperature,
    Seed,
    /// a `g_get_monotonic_time()` value: the inference stops there (`timed-out`).
    DeadlineUs,
}

impl RequestField {
    /// Every field, in florence.h's order.
    pub const ALL: [RequestField; 10] = [
        RequestField::Id,
        RequestField::Task,
        RequestField::Text,
        RequestField::Region,
        RequestField::MaxNewTokens,
        RequestField::MinNewTokens,
        RequestField::NumBeams,
        RequestField::Temperature,
        RequestField::Seed,
        RequestField::DeadlineUs,
    ];

    /// The field's name in the structure.
    pub fn name(self) -> &'static str {
        match self {
            RequestField::Id => "id",
            RequestField::Task => "task",
            RequestField::Text => "text",
            RequestField::Region => "region",
            RequestField::MaxNewTokens => "max-new-tokens",
            RequestField::MinNewTokens => "min-new-tokens",
            RequestField::NumBeams => "num-beams",
            RequestField::Temperature => "temperature",
            RequestField::Seed => "seed",
            RequestField::DeadlineUs => "deadline-us",
        }
    }

    /// Whether a result's `request` field (what was asked) may carry it: the
    /// request's own id and deadline are not part of what was asked.
    fn asked(self) -> bool {
        !matches!(self, RequestField::Id | RequestField::DeadlineUs)
    }
}

impl fmt::Display for RequestField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a request structure is invalid (the message of its `invalid-request`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidRequest {
    #[error("unknown field {name} (known: {known})")]
    UnknownField { name: String, known: String },
    #[error("{field} must be {expected}, got {got}")]
    WrongType {
        field: RequestField,
        expected: &'static str,
        got: String,
    },
    #[error("{field} must be in {min}..={max}, got {got}")]
    OutOfRange {
        field: RequestField,
        min: i128,
        max: i128,
        got: i128,
    },
    #[error("temperature must be >= 0, got {0}")]
    NegativeTemperature(f64),
    #[error("{0}")]
    Task(String),
    #[error("{0}")]
    Region(String),
}

/// What is asked: the task, its input and the generation options; `None`
/// takes the element's property (or, in a result, the model's default).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestParams {
    pub task: Option<Task>,
    pub text: Option<String>,
    /// [x1, y1, x2, y2] in pixels of the frame.
    pub region: Option<[f64; 4]>,
    pub max_new_tokens: Option<u32>,
    pub min_new_tokens: Option<u32>,
    pub num_beams: Option<u32>,
    /// 0: deterministic decoding; > 0: sampling at this temperature.
    pub temperature: Option<f64>,
    pub seed: Option<u64>,
}

/// The request on one buffer (`FlorenceRequestMeta`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BufferRequest {
    pub id: Option<String>,
    /// On `g_get_monotonic_time()`'s clock (microseconds).
    pub deadline_us: Option<i64>,
    pub params: RequestParams,
}

impl RequestParams {
    /// What `request` asks of the engine, as a result reports it.
    pub fn asked_of(request: &Request) -> RequestParams {
        let o = &request.options;
        let count = |v: Option<usize>| v.map(|v| u32::try_from(v).unwrap_or(u32::MAX));
        RequestParams {
            task: Some(request.task),
            text: request.input.text.clone(),
            region: request.input.region,
            max_new_tokens: count(o.max_new_tokens),
            min_new_tokens: count(o.min_new_tokens),
            num_beams: count(o.num_beams),
            temperature: o.temperature.map(f64::from),
            seed: o.seed,
        }
    }

    /// As a result's `request` field (a `FlorenceRequest` structure).
    pub fn to_asked(&self) -> gst::Structure {
        let mut s = gst::Structure::new_empty(ASKED_NAME);
        self.write(&mut s);
        s
    }

    /// Reads a result's `request` field back.
    pub fn from_asked(s: &gst::StructureRef) -> Result<RequestParams, InvalidRequest> {
        let known: Vec<RequestField> = RequestField::ALL
            .into_iter()
            .filter(|f| f.asked())
            .collect();
        let f = Fields::new(s, &known)?;
        RequestParams::read(&f)
    }

    fn write(&self, s: &mut gst::StructureRef) {
        if let Some(t) = self.task {
            s.set(RequestField::Task.name(), t.token());
        }
        if let Some(t) = &self.text {
            s.set(RequestField::Text.name(), t);
        }
        if let Some([x1, y1, x2, y2]) = self.region {
            // Text (exact: `f64`'s Display reads back to the same value):
            // stock PyGObject cannot read a GstValueArray.
            s.set(RequestField::Region.name(), format!("{x1},{y1},{x2},{y2}"));
        }
        for (field, v) in [
            (RequestField::MaxNewTokens, self.max_new_tokens),
            (RequestField::MinNewTokens, self.min_new_tokens),
            (RequestField::NumBeams, self.num_beams),
        ] {
            if let Some(v) = v {
                s.set(field.name(), v);
            }
        }
        if let Some(t) = self.temperature {
            s.set(RequestField::Temperature.name(), t);
        }
        if let Some(seed) = self.seed {
            s.set(RequestField::Seed.name(), seed);
        }
    }

    fn read(f: &Fields) -> Result<RequestParams, InvalidRequest> {
        let task = f
            .string(RequestField::Task)?
            .map(|t| {
                t.parse::<Task>()
                    .map_err(|e| InvalidRequest::Task(e.to_string()))
            })
            .transpose()?;
        let temperature = f.number(RequestField::Temperature)?;
        if let Some(t) = temperature.filter(|t| *t < 0.0) {
            return Err(InvalidRequest::NegativeTemperature(t));
        }
        let count = |field| {
            f.integer(field, 0, u32::MAX.into())
                .map(|v| v.map(|v| v as u32))
        };
        Ok(RequestParams {
            task,
            text: f.string(RequestField::Text)?,
            region: f.region()?,
            max_new_tokens: count(RequestField::MaxNewTokens)?,
            min_new_tokens: count(RequestField::MinNewTokens)?,
            num_beams: count(RequestField::NumBeams)?,
            temperature,
            seed: f
                .integer(RequestField::Seed, 0, u64::MAX.into())?
                .map(|v| v as u64),
        })
    }
}

impl BufferRequest {
    /// Writes this request into a `FlorenceRequestMeta`'s structure.
    pub fn write(&self, s: &mut gst::StructureRef) {
        if let Some(id) = &self.id {
            s.set(RequestField::Id.name(), id);
        }
        if let Some(us) = self.deadline_us {
            s.set(RequestField::DeadlineUs.name(), us);
        }
        self.params.write(s);
    }

    /// This request as a `FlorenceRequestMeta` structure (what the
    /// `add-request` action signal takes).
    pub fn to_structure(&self) -> gst::Structure {
        let mut s = gst::Structure::new_empty(REQUEST_META_NAME);
        self.write(&mut s);
        s
    }

    /// Reads a request structure strictly (the element's validation of it).
    pub fn decode(s: &gst::StructureRef) -> Result<BufferRequest, InvalidRequest> {
        let f = Fields::new(s, &RequestField::ALL)?;
        Ok(BufferRequest {
            id: f.string(RequestField::Id)?,
            deadline_us: f
                .integer(RequestField::DeadlineUs, i64::MIN.into(), i128::MAX)?
                .map(|us| us.min(i64::MAX.into()) as i64),
            params: RequestParams::read(&f)?,
        })
    }

    /// The request's `id` as far as it can be read, even from an invalid
    /// request: its error answer carries it as `request-id`.
    pub fn id_of(s: &gst::StructureRef) -> String {
        s.get::<Option<String>>(RequestField::Id.name())
            .ok()
            .flatten()
            .unwrap_or_default()
    }
}

/// Reads the typed fields of one request structure, after checking that it
/// holds only `known` fields.
struct Fields<'a>(&'a gst::StructureRef);

impl<'a> Fields<'a> {
    fn new(s: &'a gst::StructureRef, known: &[RequestField]) -> Result<Self, InvalidRequest> {
        if let Some(unknown) = s
            .fields()
            .find(|n| !known.iter().any(|k| k.name() == n.as_str()))
        {
            let names: Vec<&str> = known.iter().map(|k| k.name()).collect();
            return Err(InvalidRequest::UnknownField {
                name: unknown.to_string(),
                known: names.join(", "),
            });
        }
        Ok(Fields(s))
    }

    fn value(&self, field: RequestField) -> Option<&glib::SendValue> {
        self.0.value(field.name()).ok()
    }

    fn string(&self, field: RequestField) -> Result<Option<String>, InvalidRequest> {
        let Some(v) = self.value(field) else {
            return Ok(None);
        };
        v.get::<Option<String>>()
            .map_err(|_| InvalidRequest::WrongType {
                field,
                expected: "a string",
                got: v.type_().to_string(),
            })
            .map(|s| Some(s.unwrap_or_default()))
    }

    /// An integer within `[min, max]`.
    fn integer(
        &self,
        field: RequestField,
        min: i128,
        max: i128,
    ) -> Result<Option<i128>, InvalidRequest> {
        let Some(v) = self.value(field) else {
            return Ok(None);
        };
        match integer(v) {
            Some(i) if (min..=max).contains(&i) => Ok(Some(i)),
            Some(got) => Err(InvalidRequest::OutOfRange {
                field,
                min,
                max,
                got,
            }),
            None => Err(InvalidRequest::WrongType {
                field,
                expected: "an integer",
                got: format!("{v:?}"),
            }),
        }
    }

    fn number(&self, field: RequestField) -> Result<Option<f64>, InvalidRequest> {
        let Some(v) = self.value(field) else {
            return Ok(None);
        };
        match number(v) {
            Some(n) if n.is_finite() => Ok(Some(n)),
            _ => Err(InvalidRequest::WrongType {
                field,
                expected: "a number",
                got: format!("{v:?}"),
            }),
        }
    }

    /// `region`: an array or list of 4 numbers, or "x1,y1,x2,y2".
    fn region(&self) -> Result<Option<[f64; 4]>, InvalidRequest> {
        let Some(v) = self.value(RequestField::Region) else {
            return Ok(None);
        };
        if let Ok(text) = v.get::<String>() {
            return parse_region(&text)
                .map(Some)
                .map_err(InvalidRequest::Region);
        }
        let items: Option<Vec<glib::SendValue>> = v
            .get::<gst::Array>()
            .map(|a| a.to_vec())
            .or_else(|_| v.get::<gst::List>().map(|l| l.to_vec()))
            .ok();
        let numbers: Option<Vec<f64>> = items.and_then(|i| i.iter().map(number).collect());
        match numbers.as_deref() {
            Some(&[x1, y1, x2, y2]) => Ok(Some([x1, y1, x2, y2])),
            _ => Err(InvalidRequest::Region(format!(
                "region must be an array of 4 numbers or \"x1,y1,x2,y2\", got {v:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> BufferRequest {
        BufferRequest {
            id: Some("r1".into()),
            deadline_us: Some(123_456),
            params: RequestParams {
                task: Some(Task::RegionToCategory),
                text: Some("a cat".into()),
                region: Some([0.1, 2.0, 300.25, 1e-7]),
                max_new_tokens: Some(20),
                min_new_tokens: Some(0),
                num_beams: Some(3),
                temperature: Some(0.7),
                seed: Some(u64::MAX),
            },
        }
    }

    #[test]
    fn a_request_reads_back_as_written() {
        gst::init().unwrap();
        let r = full();
        assert_eq!(BufferRequest::decode(&r.to_structure()), Ok(r.clone()));
        assert_eq!(
            RequestParams::from_asked(&r.params.to_asked()),
            Ok(r.params.clone())
        );
        assert_eq!(BufferRequest::id_of(&r.to_structure()), "r1");
    }

    #[test]
    fn a_bad_field_invalidates_the_request() {
        gst::init().unwrap();
        let mut s = full().to_structure();
        s.set("colour", "red");
        let e = BufferRequest::decode(&s).unwrap_err();
        assert!(e.to_string().starts_with("unknown field colour"), "{e}");
        let mut s = full().to_structure();
        s.set("num-beams", -1i32);
        let e = BufferRequest::decode(&s).unwrap_err();
        assert_eq!(e.to_string(), "num-beams must be in 0..=4294967295, got -1");
        let mut s = full().to_structure();
        s.set("temperature", -0.5);
        assert_eq!(
            BufferRequest::decode(&s),
            Err(InvalidRequest::NegativeTemperature(-0.5))
        );
        let mut s = full().to_structure();
        s.set("task", "paint");
        assert!(matches!(
            BufferRequest::decode(&s),
            Err(InvalidRequest::Task(_))
        ));
        // The id and deadline are not part of what was asked.
        assert!(RequestParams::from_asked(&full().to_structure()).is_err());
    }
}
