//! Live mode: the worker thread that analyses the newest frame when it is free.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst::subclass::prelude::*;

use super::category::CAT;
use super::frame::{Converter, frame_to_rgb};
use super::imp::{FlorenceCaption, State};
use super::inference::Shared;
use super::live_job::{Frame, Job};
use super::result::Caption;
use super::settings::Settings;
use super::similarity::{mean_abs_diff, thumbnail};
use crate::engine::{EngineError, Florence, Interrupt};

impl FlorenceCaption {
    pub(super) fn spawn_worker(
        &self,
        florence: &Arc<Florence>,
        shared: &Arc<Shared>,
        model: &str,
    ) -> Result<(SyncSender<Job>, std::thread::JoinHandle<()>), gst::ErrorMessage> {
        let (tx, rx) = sync_channel::<Job>(1);
        let florence = florence.clone();
        let shared = shared.clone();
        let model = model.to_owned();
        let element = self.obj().downgrade();
        let handle = std::thread::Builder::new()
            .name("florence-worker".into())
            .spawn(move || {
                let mut converter: Option<Converter> = None;
                for job in rx {
                    if shared.generation.load(Ordering::SeqCst) != job.generation {
                        // Queued before a flush or stop: drop it (and its frame) unseen.
                        shared.busy.clear();
                        continue;
                    }
                    let image = match job.frame {
                        Frame::Rgb(image) => Ok(image),
                        Frame::Raw(buffer, info) => frame_to_rgb(&buffer, &info, &mut converter),
                    };
                    let image = match image {
                        Ok(i) => i,
                        Err(e) => {
                            if let Some(element) = element.upgrade() {
                                gst::warning!(CAT, obj = element, "cannot read frame: {e}");
                            }
                            shared.busy.clear();
                            continue;
                        }
                    };
                    let result =
                        shared.run(&florence, &image, &job.request, None, Interrupt::new());
                    let Some(element) = element.upgrade() else {
                        break;
                    };
                    let imp = element.imp();
                    match result {
                        Ok(out) if shared.generation.load(Ordering::SeqCst) == job.generation => {
                            gst::debug!(
                                CAT,
                                imp = imp,
                                "frame {} analysed: {} ms after hand-over, inference {:.1} ms",
                                job.pts.display(),
                                job.dispatched.elapsed().as_millis(),
                                out.timings.total_ms
                            );
                            imp.observe_latency(job.dispatched.elapsed());
                            let serial = shared.serial.fetch_add(1, Ordering::SeqCst) + 1;
                            let cap = Caption::from_output(&out, &job.request, job.pts, serial);
                            *shared.latest.lock() = Some(cap.clone());
                            let duration = live_text_duration(
                                job.dispatched.elapsed(),
                                Duration::from_millis(job.interval_ms),
                                job.frame_duration,
                            );
                            imp.publish(&cap, &model, Some(duration));
                        }
                        Ok(_) | Err(EngineError::Interrupted(_)) => {
                            gst::debug!(CAT, imp = imp, "dropping a result from before a flush")
                        }
                        Err(e) => gst::element_imp_warning!(
                            imp,
                            gst::LibraryError::Failed,
                            ("inference failed on a frame"),
                            ["{}", e]
                        ),
                    }
                    shared.busy.clear();
                }
            })
            .map_err(|e| {
                gst::error_msg!(
                    gst::ResourceError::Failed,
                    ("cannot start the inference thread: {}", e)
                )
            })?;
        Ok((tx, handle))
    }

    /// Live mode: hand the frame to the worker if it is free and the interval and
    /// similarity settings allow; count it as skipped otherwise.
    pub(super) fn maybe_dispatch(
        &self,
        state: &mut State,
        settings: &Settings,
        buf: &gst::BufferRef,
        info: &gst_video::VideoInfo,
        pts: Option<gst::ClockTime>,
    ) {
        let skipped = |imp: &Self, reason: &str| {
            gst::log!(
                CAT,
                imp = imp,
                "frame {} not analysed: {reason}",
                pts.display()
            );
            imp.stats.lock().frames_skipped += 1
        };
        if state.worker.is_none() {
            return;
        }
        if state.shared.busy.is_set() {
            return skipped(self, "the worker is busy");
        }
        let interval = std::time::Duration::from_millis(settings.inference_interval_ms);
        if state.last_dispatch.is_some_and(|t| t.elapsed() < interval) {
            return skipped(self, "inference-interval has not passed");
        }
        let frame = if settings.skip_similar > 0.0 {
            // The similarity test needs the picture now.
            let image = match frame_to_rgb(buf, info, &mut state.converter) {
                Ok(i) => i,
                Err(e) => {
                    gst::warning!(CAT, imp = self, "cannot read frame: {e}");
                    return skipped(self, "the frame cannot be read");
                }
            };
            let thumb = thumbnail(&image);
            if let Some(prev) = &state.last_thumb
                && mean_abs_diff(prev, &thumb) < settings.skip_similar
            {
                return skipped(self, "similar to the last analysed frame");
            }
            state.last_thumb = Some(thumb);
            Frame::Rgb(image)
        } else {
            // A memcpy here; the conversion runs on the worker.
            match buf.copy_deep() {
                Ok(copy) => Frame::Raw(copy, info.clone()),
                Err(e) => {
                    gst::warning!(CAT, imp = self, "cannot copy frame: {e}");
                    return skipped(self, "the frame cannot be copied");
                }
            }
        };
        let job = Job {
            frame,
            pts,
            request: state
                .request
                .current(self.obj().upcast_ref(), &state.florence, settings),
            generation: state.shared.generation.load(Ordering::SeqCst),
            interval_ms: settings.inference_interval_ms,
            dispatched: Instant::now(),
            frame_duration: buf.duration().map(Duration::from).or_else(|| {
                let fps = info.fps();
                (fps.numer() > 0 && fps.denom() > 0).then(|| {
                    Duration::from_secs_f64(f64::from(fps.denom()) / f64::from(fps.numer()))
                })
            }),
        };
        let Some((tx, _)) = state.worker.as_ref() else {
            return;
        };
        state.shared.busy.set();
        match tx.try_send(job) {
            Ok(()) => {
                gst::debug!(
                    CAT,
                    imp = self,
                    "frame {} handed to the worker",
                    pts.display()
                );
                state.last_dispatch = Some(Instant::now());
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                state.shared.busy.clear();
                skipped(self, "the worker did not take it");
            }
        }
    }
}

/// Live mode: how long a new result's text lasts, from the analysed frame's PTS.
///
/// textoverlay shows a text for its duration and holds the next one back until
/// the previous has ended, so the text must last until about when the next
/// result arrives, no less (captions would blink off) and not much more (the
/// next caption would wait). The next result is due when the next frame is
/// taken (after the interval, at a frame boundary) plus its latency, so with
/// `latency` from hand-over to result: max(latency, interval) + latency, plus
/// one frame for the frame boundary and 15 % for latency jitter.
fn live_text_duration(
    latency: Duration,
    interval: Duration,
    frame: Option<Duration>,
) -> gst::ClockTime {
    let cycle = latency.max(interval) + latency;
    let frame = frame.unwrap_or(Duration::from_millis(33));
    let d = cycle + frame + cycle.mul_f64(0.15);
    gst::ClockTime::from_nseconds(d.as_nanos() as u64)
}

impl FlorenceCaption {
    /// Live mode, at EOS: waits (at most `drain-timeout`) for the frame the worker
    /// has, so its result (message and `text_src`) goes out before EOS; past
    /// the bound the analysis is cancelled and its result dropped.
    pub(super) fn drain(&self, timeout: Duration) {
        let Some(shared) = self.shared() else { return };
        if !shared.busy.is_set() {
            return;
        }
        gst::debug!(CAT, imp = self, "EOS: waiting for the analysis in flight");
        if shared.busy.wait_done(timeout) {
            return;
        }
        gst::info!(
            CAT,
            imp = self,
            "EOS: the analysis in flight did not end within drain-timeout ({} ms); its result is dropped",
            timeout.as_millis()
        );
        // Not waiting any longer: the worker drops what it has (a result it is
        // already publishing may still follow EOS on the bus).
        shared.generation.fetch_add(1, Ordering::SeqCst);
        shared.cancel(None);
    }
}
