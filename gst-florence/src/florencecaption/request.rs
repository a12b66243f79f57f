//! Requests an application attaches to a buffer (`FlorenceRequestMeta`).
//!
//! Every field is read strictly: a field the element does not know, or one of
//! the wrong type, makes the whole request invalid (an `invalid-request`
//! result), never silently ignored. A number may come as any GLib integer type
//! (what PyGObject, `gst_structure_from_string` or C code produce) or as a
//! double of integral value where an integer is meant.

use std::time::{Duration, Instant};

use gst::glib;

use super::settings::{Settings, without_untaken_inputs};
use super::{
    ERROR_CANCELLED, ERROR_INFERENCE_FAILED, ERROR_INVALID_REQUEST, ERROR_TIMED_OUT,
    REQUEST_META_NAME,
};
use crate::engine::task::{Task, parse_region};
use crate::engine::{EngineError, Interruption, Request};

/// The fields a `FlorenceRequestMeta` may carry.
pub const REQUEST_FIELDS: [&str; 10] = [
    "id",
    "task",
    "text",
    "region",
    "max-new-tokens",
    "min-new-tokens",
    "num-beams",
    "temperature",
    "seed",
    "deadline-us",
];

/// The request an application attached to one buffer (`FlorenceRequestMeta`).
pub(super) struct BufferRequest {
    pub(super) id: String,
    /// Layered over the element's properties, or why the meta is invalid.
    pub(super) request: Result<Request, String>,
    /// `deadline-us`, on `g_get_monotonic_time()`'s clock.
    pub(super) deadline: Option<Instant>,
}

/// A `g_get_monotonic_time()` value (microseconds) as an `Instant`.
fn monotonic_to_instant(us: i64) -> Instant {
    let now = Instant::now();
    let ahead = us.saturating_sub(glib::monotonic_time());
    now + Duration::from_micros(ahead.max(0) as u64)
}

/// Whether `buf` carries its own request.
pub(super) fn has_request(buf: &gst::BufferRef) -> bool {
    gst::meta::CustomMeta::from_buffer(buf, REQUEST_META_NAME).is_ok()
}

/// `v` as a number: any integer type, float or double.
fn number(v: &glib::SendValue) -> Option<f64> {
    integer(v)
        .map(|i| i as f64)
        .or_else(|| v.get::<f64>().ok())
        .or_else(|| v.get::<f32>().ok().map(f64::from))
}

/// `v` as an integer: any integer type, or a double of integral value.
fn integer(v: &glib::SendValue) -> Option<i128> {
    use glib::Type;
    let t = v.type_();
    let int = match t {
        t if t == Type::I8 => v.get::<i8>().ok().map(i128::from),
        t if t == Type::U8 => v.get::<u8>().ok().map(i128::from),
        t if t == Type::I32 => v.get::<i32>().ok().map(i128::from),
        t if t == Type::U32 => v.get::<u32>().ok().map(i128::from),
        t if t == Type::I_LONG => v.get::<glib::ILong>().ok().map(|l| i128::from(l.0)),
        t if t == Type::U_LONG => v.get::<glib::ULong>().ok().map(|l| i128::from(l.0)),
        t if t == Type::I64 => v.get::<i64>().ok().map(i128::from),
        t if t == Type::U64 => v.get::<u64>().ok().map(i128::from),
        _ => None,
    };
    int.or_else(|| {
        let d = v
            .get::<f64>()
            .ok()
            .or_else(|| v.get::<f32>().ok().map(f64::from))?;
        (d.fract() == 0.0 && d.abs() < 9.0e18).then_some(d as i128)
    })
}

/// Reads the typed fields of one request structure.
struct Fields<'a>(&'a gst::StructureRef);

impl Fields<'_> {
    fn string(&self, name: &str) -> Result<Option<String>, String> {
        match self.0.value(name) {
            Err(_) => Ok(None),
            Ok(v) => v
                .get::<Option<String>>()
                .map_err(|_| format!("{name} must be a string, got {}", v.type_()))
                .map(|s| Some(s.unwrap_or_default())),
        }
    }

    /// An integer within `[min, max]`.
    fn integer(&self, name: &str, min: i128, max: i128) -> Result<Option<i128>, String> {
        let Ok(v) = self.0.value(name) else {
            return Ok(None);
        };
        match integer(v) {
            Some(i) if (min..=max).contains(&i) => Ok(Some(i)),
            Some(i) => Err(format!("{name} must be in {min}..={max}, got {i}")),
            None => Err(format!("{name} must be an integer, got {v:?}")),
        }
    }

    fn count(&self, name: &str) -> Result<Option<usize>, String> {
        Ok(self.integer(name, 0, u32::MAX.into())?.map(|i| i as usize))
    }

    fn number(&self, name: &str) -> Result<Option<f64>, String> {
        let Ok(v) = self.0.value(name) else {
            return Ok(None);
        };
        match number(v) {
            Some(n) if n.is_finite() => Ok(Some(n)),
            _ => Err(format!("{name} must be a number, got {v:?}")),
        }
    }

    /// `region`: an array or list of 4 numbers, or "x1,y1,x2,y2".
    fn region(&self) -> Result<Option<[f64; 4]>, String> {
        let Ok(v) = self.0.value("region") else {
            return Ok(None);
        };
        if let Ok(text) = v.get::<String>() {
            return parse_region(&text).map(Some);
        }
        let items: Option<Vec<glib::SendValue>> = v
            .get::<gst::Array>()
            .map(|a| a.to_vec())
            .or_else(|_| v.get::<gst::List>().map(|l| l.to_vec()))
            .ok();
        let numbers: Option<Vec<f64>> = items.and_then(|i| i.iter().map(number).collect());
        match numbers.as_deref() {
            Some(&[x1, y1, x2, y2]) => Ok(Some([x1, y1, x2, y2])),
            _ => Err(format!(
                "region must be an array of 4 numbers or \"x1,y1,x2,y2\", got {v:?}"
            )),
        }
    }
}

/// The request on `buf`, if it carries one.
pub(super) fn buffer_request(buf: &gst::BufferRef, settings: &Settings) -> Option<BufferRequest> {
    let meta = gst::meta::CustomMeta::from_buffer(buf, REQUEST_META_NAME).ok()?;
    Some(parse_request(meta.structure(), settings))
}

/// A request structure layered over the element's properties.
pub(super) fn parse_request(s: &gst::StructureRef, settings: &Settings) -> BufferRequest {
    let f = Fields(s);
    let id = f.string("id").ok().flatten().unwrap_or_default();
    let mut deadline = None;
    let mut parse = || -> Result<Request, String> {
        if let Some(unknown) = s.fields().find(|n| !REQUEST_FIELDS.contains(&n.as_str())) {
            return Err(format!(
                "unknown field {unknown} (known: {})",
                REQUEST_FIELDS.join(", ")
            ));
        }
        f.string("id")?;
        deadline = f
            .integer("deadline-us", i64::MIN.into(), i128::MAX)?
            .map(|us| monotonic_to_instant(us.min(i64::MAX.into()) as i64));
        let mut req = settings.request_as_set();
        if let Some(task) = f.string("task")? {
            req.task = task.parse::<Task>().map_err(|e| e.to_string())?;
        }
        // Inputs from the properties that this buffer's task does not take are dropped.
        let mut req = without_untaken_inputs(req);
        let text = f.string("text")?;
        let region = f.region()?;
        if text.is_some() || region.is_some() {
            // The buffer's own input replaces the properties' (a <loc_> text
            // replaces the `region` property for region tasks).
            req.input.text = text;
            req.input.region = region;
        }
        if let Some(v) = f.count("max-new-tokens")? {
            req.options.max_new_tokens = Some(v);
        }
        if let Some(v) = f.count("min-new-tokens")? {
            req.options.min_new_tokens = Some(v);
        }
        if let Some(v) = f.count("num-beams")? {
            req.options.num_beams = Some(v);
        }
        if let Some(t) = f.number("temperature")? {
            if t < 0.0 {
                return Err(format!("temperature must be >= 0, got {t}"));
            }
            req.options.temperature = (t != 0.0).then_some(t as f32);
        }
        if let Some(seed) = f.integer("seed", 0, u64::MAX.into())? {
            req.options.seed = Some(seed as u64);
        }
        Ok(req)
    };
    let request = parse();
    BufferRequest {
        id,
        request,
        deadline,
    }
}

/// `buffer` (made writable: a shallow copy if it is shared) with `request`'s
/// fields as its `FlorenceRequestMeta`, replacing any it had: what the
/// `add-request` action signal does, for bindings whose custom-meta structure
/// is a copy (PyGObject).
pub(super) fn add_request(mut buffer: gst::Buffer, request: &gst::StructureRef) -> gst::Buffer {
    let b = buffer.make_mut();
    let mut meta = match gst::meta::CustomMeta::from_mut_buffer(b, REQUEST_META_NAME) {
        Ok(meta) => meta,
        Err(_) => match gst::meta::CustomMeta::add(b, REQUEST_META_NAME) {
            Ok(meta) => meta,
            // Only fails if the meta is not registered, which plugin_init does.
            Err(_) => return buffer,
        },
    };
    let s = meta.mut_structure();
    let old: Vec<glib::GString> = s.fields().map(|f| f.to_owned()).collect();
    for name in old {
        s.remove_field(name.as_str());
    }
    for (name, value) in request.iter() {
        s.set_value(name, value.clone());
    }
    buffer
}

/// Whether an engine error is the request's fault (bad task input or parameters).
pub(super) fn error_kind(e: &EngineError) -> &'static str {
    match e {
        EngineError::Prompt(_)
        | EngineError::Parameter(_)
        | EngineError::Image(_)
        | EngineError::TaskUnavailable { .. } => ERROR_INVALID_REQUEST,
        EngineError::Interrupted(Interruption::DeadlineExceeded) => ERROR_TIMED_OUT,
        EngineError::Interrupted(Interruption::Cancelled) => ERROR_CANCELLED,
        e => super::hailo::device_error_kind(e).unwrap_or(ERROR_INFERENCE_FAILED),
    }
}
