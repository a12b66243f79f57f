//! The element: an in-place transform that keeps the newest result's
//! drawing and puts it on every buffer.

use std::sync::LazyLock;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;
use parking_lot::Mutex;

use super::composition;
use crate::protocol::{META_NAME, ResultField, task_result};

pub(super) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "florenceoverlay",
        gst::DebugColorFlags::empty(),
        Some("Florence-2 results drawn on video"),
    )
});

/// Raw formats GStreamer's overlay blending reads and writes.
const FORMATS: [gst_video::VideoFormat; 15] = [
    gst_video::VideoFormat::I420,
    gst_video::VideoFormat::Yv12,
    gst_video::VideoFormat::Nv12,
    gst_video::VideoFormat::Nv21,
    gst_video::VideoFormat::Yuy2,
    gst_video::VideoFormat::Uyvy,
    gst_video::VideoFormat::Ayuv,
    gst_video::VideoFormat::Rgba,
    gst_video::VideoFormat::Bgra,
    gst_video::VideoFormat::Argb,
    gst_video::VideoFormat::Abgr,
    gst_video::VideoFormat::Rgbx,
    gst_video::VideoFormat::Bgrx,
    gst_video::VideoFormat::Rgb,
    gst_video::VideoFormat::Bgr,
];

/// A result as the meta carries it.
#[derive(Debug, PartialEq)]
struct Drawn {
    /// `result`: the task result's JSON.
    json: String,
    /// The frame size its coordinates are in.
    size: [u32; 2],
}

#[derive(Default)]
struct State {
    info: Option<gst_video::VideoInfo>,
    /// Downstream renders overlay composition metas itself; `None` until
    /// asked for the current caps.
    attach: Option<bool>,
    /// What the current drawing shows, so an unchanged result is not drawn
    /// again.
    drawn: Option<Drawn>,
    composition: Option<gst_video::VideoOverlayComposition>,
    blend_failed: bool,
}

#[derive(Default)]
pub struct FlorenceOverlay {
    /// The florencecaption instance whose results are drawn (empty: the
    /// first on the buffer's way).
    source: Mutex<String>,
    state: Mutex<State>,
}

impl FlorenceOverlay {
    /// Whether downstream renders overlay composition metas for `info`: an
    /// allocation query of our own, as overlay elements do (an in-place
    /// transform makes none, and upstream may never ask).
    fn downstream_renders_overlays(&self, info: &gst_video::VideoInfo) -> bool {
        let Ok(caps) = info.to_caps() else {
            return false;
        };
        let mut query = gst::query::Allocation::new(Some(&caps), false);
        let answered = self.obj().src_pad().peer_query(&mut query);
        let attach = answered
            && query
                .find_allocation_meta::<gst_video::VideoOverlayCompositionMeta>()
                .is_some();
        gst::debug!(
            CAT,
            imp = self,
            "downstream renders overlay metas: {attach}"
        );
        attach
    }

    /// The chosen instance's result on `buf`, as it is there: the result's
    /// JSON and the frame size its coordinates are in. Compared with the
    /// drawn one on every buffer, so nothing is decoded until it changes.
    fn result_on(&self, buf: &gst::BufferRef) -> Option<Drawn> {
        let meta = gst::meta::CustomMeta::from_buffer(buf, META_NAME).ok()?;
        let top = meta.structure();
        let source = self.source.lock();
        let nested;
        let s = if source.is_empty() {
            top
        } else {
            nested = top
                .get::<gst::Structure>(ResultField::Results.name())
                .ok()?
                .get::<gst::Structure>(source.as_str())
                .ok()?;
            &nested
        };
        // A failed per-buffer request carries an error, not a result: the
        // last drawing stays.
        let field = |f: ResultField| s.get::<u32>(f.name()).ok();
        Some(Drawn {
            json: s.get::<String>(ResultField::Result.name()).ok()?,
            size: [
                field(ResultField::ImageWidth)?,
                field(ResultField::ImageHeight)?,
            ],
        })
    }
}

#[glib::object_subclass]
impl ObjectSubclass for FlorenceOverlay {
    const NAME: &'static str = "GstFlorenceOverlay";
    type Type = super::FlorenceOverlay;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for FlorenceOverlay {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("source")
                    .nick("Source")
                    .blurb(
                        "Name of the florencecaption instance whose results are drawn \
                         (empty: the first one upstream)",
                    )
                    .mutable_playing()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        if pspec.name() == "source" {
            *self.source.lock() = value
                .get::<Option<String>>()
                .ok()
                .flatten()
                .unwrap_or_default();
            // The next result of the new source replaces the drawing.
            self.state.lock().drawn = None;
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "source" => self.source.lock().to_value(),
            _ => unreachable!("no property {}", pspec.name()),
        }
    }
}

impl GstObjectImpl for FlorenceOverlay {}

impl ElementImpl for FlorenceOverlay {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Florence-2 overlay",
                "Filter/Effect/Video/Overlay",
                "Draws the newest florencecaption result on the video: regions with \
                 their labels, text along the bottom",
                "florence developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list(FORMATS)
                .build();
            [gst::PadDirection::Src, gst::PadDirection::Sink]
                .into_iter()
                .map(|direction| {
                    let name = if direction == gst::PadDirection::Src {
                        "src"
                    } else {
                        "sink"
                    };
                    gst::PadTemplate::new(name, direction, gst::PadPresence::Always, &caps)
                        .expect("a valid template")
                })
                .collect()
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for FlorenceOverlay {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn set_caps(&self, incaps: &gst::Caps, _outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "not raw video: {incaps}"))?;
        let mut state = self.state.lock();
        // A new frame size needs a new drawing of the same result.
        if state.info.as_ref().map(|i| (i.width(), i.height()))
            != Some((info.width(), info.height()))
        {
            state.drawn = None;
            state.composition = None;
        }
        state.info = Some(info);
        state.attach = None;
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.state.lock() = State::default();
        Ok(())
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let result = self.result_on(buf);
        let mut state = self.state.lock();
        let Some(info) = state.info.clone() else {
            return Err(gst::FlowError::NotNegotiated);
        };
        if let Some(r) = result
            && state.drawn.as_ref() != Some(&r)
        {
            // One the protocol cannot read (another writer's meta) is not drawn.
            state.composition = task_result::decode(&r.json)
                .ok()
                .and_then(|t| composition::of(&t, r.size, info.width(), info.height()));
            state.drawn = Some(r);
        }
        let Some(composition) = state.composition.clone() else {
            return Ok(gst::FlowSuccess::Ok);
        };
        let attach = match state.attach {
            Some(a) => a,
            None => {
                drop(state);
                let a = self.downstream_renders_overlays(&info);
                state = self.state.lock();
                *state.attach.insert(a)
            }
        };
        if attach {
            gst_video::VideoOverlayCompositionMeta::add(buf, &composition);
            return Ok(gst::FlowSuccess::Ok);
        }
        let blended = gst_video::VideoFrameRef::from_buffer_ref_writable(buf, &info)
            .map_err(|_| glib::bool_error!("cannot map the frame"))
            .and_then(|mut frame| composition.blend(&mut frame));
        if let Err(e) = blended
            && !std::mem::replace(&mut state.blend_failed, true)
        {
            // Once: the video goes on undrawn rather than failing the pipeline.
            gst::element_imp_warning!(
                self,
                gst::StreamError::Format,
                ["cannot draw on this frame: {e}"]
            );
        }
        Ok(gst::FlowSuccess::Ok)
    }
}
