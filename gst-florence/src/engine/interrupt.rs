//! Stopping a run early: at a deadline, or on a cancel from another thread.
//!
//! The engine checks before each stage and each decoder step; a backend whose
//! runtime can stop a call in progress (ONNX Runtime's `RunOptions::terminate`)
//! registers that as the run's stop hook, so a cancel or the deadline takes
//! effect within milliseconds even in the middle of the vision encoder.

use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::error::{EngineError, Interruption};

/// Stops the call in progress (a backend's terminate).
pub type StopHook = Arc<dyn Fn() + Send + Sync>;

/// Something a request may wait on (a queue for a graph, another user's
/// encode of the same image) that its cancel must wake so it can leave.
pub trait Wake: Send + Sync {
    fn wake(&self);
}

/// A run's stop condition, shared by every clone of it.
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    deadline: Option<Instant>,
    inner: Arc<InterruptInner>,
}

#[derive(Default)]
struct InterruptInner {
    cancelled: AtomicBool,
    /// Stops the backend call in progress; called by a cancel.
    stop: Mutex<Option<StopHook>>,
}

impl std::fmt::Debug for InterruptInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterruptInner")
            .field("cancelled", &self.cancelled.load(Ordering::SeqCst))
            .finish()
    }
}

/// Ends the deadline timer thread when dropped.
pub struct DeadlineTimer {
    _stop: std::sync::mpsc::Sender<()>,
}

impl Interrupt {
    /// Never stops unless cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops the run once `deadline` has passed.
    pub fn with_deadline(deadline: Instant) -> Self {
        Interrupt {
            deadline: Some(deadline),
            ..Self::default()
        }
    }

    /// Asks the run (and every clone of this handle) to stop now.
    pub fn cancel(&self) {
        let stop = self.inner.stop.lock();
        self.inner.cancelled.store(true, Ordering::SeqCst);
        if let Some(stop) = stop.as_ref() {
            stop();
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// When the run must have finished, if ever.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Makes `stop` what a cancel calls from now on (replacing the previous
    /// call's); calls it at once when the run is cancelled already, and, with
    /// a deadline, from a timer thread when it passes (until the returned
    /// guard is dropped).
    pub fn on_stop(&self, stop: StopHook) -> Option<DeadlineTimer> {
        self.on_cancel(stop.clone());
        let deadline = self.deadline?;
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("florence-deadline".into())
            .spawn(move || {
                let wait = deadline.saturating_duration_since(Instant::now());
                if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(wait) {
                    stop();
                }
            })
            .ok()?;
        Some(DeadlineTimer { _stop: tx })
    }

    /// Makes `stop` what a cancel calls from now on (replacing the previous
    /// call's), and calls it at once when the run is cancelled already; no
    /// timer: for a wait that watches the deadline itself (a queue's).
    pub fn on_cancel(&self, stop: StopHook) {
        let mut slot = self.inner.stop.lock();
        if self.is_cancelled() {
            stop();
        }
        *slot = Some(stop);
    }

    /// A runtime failure caused by a cancel or the deadline is that.
    pub fn explain(&self, e: EngineError) -> EngineError {
        match e {
            EngineError::Inference { .. } if self.is_cancelled() => {
                EngineError::Interrupted(Interruption::Cancelled)
            }
            EngineError::Inference { .. } if self.deadline.is_some_and(|d| Instant::now() >= d) => {
                EngineError::Interrupted(Interruption::DeadlineExceeded)
            }
            e => e,
        }
    }

    /// `Err` once cancelled or past the deadline.
    pub fn check(&self) -> Result<(), EngineError> {
        if self.is_cancelled() {
            return Err(EngineError::Interrupted(Interruption::Cancelled));
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(EngineError::Interrupted(Interruption::DeadlineExceeded));
        }
        Ok(())
    }
}
