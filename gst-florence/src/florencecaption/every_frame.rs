//! Every-frame mode: each buffer is analysed on the streaming thread before it
//! leaves, with the element's request or the buffer's own (`FlorenceRequestMeta`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use gst::prelude::*;
use gst::subclass::prelude::*;

use super::category::CAT;
use super::frame::frame_to_rgb;
use super::imp::{FlorenceCaption, State};
use super::inference::Shared;
use super::request::buffer_request;
use super::result::{Caption, attach, attach_caption, error_fields};
use super::settings::Settings;
use crate::engine::preprocess::RgbImage;
use crate::engine::{Florence, Interrupt, Request};
use crate::protocol::ErrorKind;

/// What one analysis needs, taken from the state so its lock is not held meanwhile.
pub(super) struct Analysis {
    /// The properties' request (for a buffer without its own).
    request: Request,
    /// When the buffer came in (its latency runs from here).
    started: Instant,
    image: RgbImage,
    florence: Arc<Florence>,
    model: String,
    serial: u64,
    shared: Arc<Shared>,
}

impl FlorenceCaption {
    /// Reads the frame as RGB and takes what the analysis needs from `state`.
    pub(super) fn prepare_analysis(
        &self,
        state: &mut State,
        settings: &Settings,
        info: &gst_video::VideoInfo,
        buf: &gst::BufferRef,
    ) -> Result<Analysis, gst::FlowError> {
        let started = Instant::now();
        let image = frame_to_rgb(buf, info, &mut state.converter).map_err(|e| {
            gst::element_imp_error!(
                self,
                gst::StreamError::Format,
                ("cannot read the frame: {}", e)
            );
            gst::FlowError::Error
        })?;
        Ok(Analysis {
            request: state
                .request
                .current(self.obj().upcast_ref(), &state.florence, settings),
            started,
            image,
            florence: state.florence.clone(),
            model: state.model_name.clone(),
            serial: state.shared.serial.fetch_add(1, Ordering::SeqCst) + 1,
            shared: state.shared.clone(),
        })
    }

    /// Runs the buffer's request (or the properties') and attaches the result,
    /// or the error when the buffer carried its own request.
    pub(super) fn analyse(&self, buf: &mut gst::BufferRef, job: Analysis, settings: &Settings) {
        let pts = buf.pts();
        gst::debug!(CAT, imp = self, "analysing frame {}", pts.display());
        let (request_id, request, interrupt) = match buffer_request(buf, settings) {
            Some(r) => (
                Some(r.id),
                r.request,
                r.deadline
                    .map_or_else(Interrupt::new, Interrupt::with_deadline),
            ),
            None => (None, Ok(job.request.clone()), Interrupt::new()),
        };
        let result = request
            .map_err(|e| (ErrorKind::InvalidRequest, e))
            .and_then(|req| {
                job.shared
                    .run(
                        &job.florence,
                        &job.image,
                        &req,
                        request_id.as_deref(),
                        interrupt,
                    )
                    .map(|out| (out, req))
                    .map_err(|e| (ErrorKind::of(&e), e.to_string()))
            });
        let took = job.started.elapsed();
        self.observe_latency(took);
        gst::debug!(
            CAT,
            imp = self,
            "frame {} analysed in {} ms{}: {}",
            pts.display(),
            took.as_millis(),
            request_id
                .as_deref()
                .map(|id| format!(" (request {id})"))
                .unwrap_or_default(),
            match &result {
                Ok((out, _)) => format!("{:?}", out.result.text()),
                Err((kind, message)) => format!("{kind}: {message}"),
            }
        );
        match result {
            Ok((out, req)) => {
                let mut cap = Caption::from_output(&out, &req, pts, job.serial);
                cap.request_id = request_id;
                self.publish(&cap, &job.model, buf.duration());
                attach_caption(
                    buf,
                    &self.obj().name(),
                    &cap,
                    &job.model,
                    true,
                    [job.image.width, job.image.height],
                );
            }
            Err((kind, message)) => {
                gst::warning!(CAT, imp = self, "inference failed ({kind}): {message}");
                match request_id {
                    // The application asked for this buffer: the answer is the error.
                    Some(id) => attach(buf, &self.obj().name(), error_fields(&id, kind, &message)),
                    // Stopped by a flush or a state change: not a failure.
                    None if kind == ErrorKind::Cancelled => {}
                    None => gst::element_imp_warning!(
                        self,
                        gst::LibraryError::Failed,
                        ("inference failed on a frame"),
                        ["{}", message]
                    ),
                }
            }
        }
    }
}
