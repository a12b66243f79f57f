//! The inference state both modes share: the running inference (for
//! flush, stop and the `cancel` signal), the live worker's busy flag and
//! latest result.

use parking_lot::{Condvar, Mutex};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::ort_log::routed;
use super::result::Caption;
use crate::engine::preprocess::RgbImage;
use crate::engine::{EngineError, Florence, Interrupt, Output, Request};

/// Whether the live worker has a frame, with a wait for it to be done (EOS).
#[derive(Default)]
pub(super) struct Busy {
    busy: Mutex<bool>,
    done: Condvar,
}

impl Busy {
    fn lock(&self) -> parking_lot::MutexGuard<'_, bool> {
        self.busy.lock()
    }

    pub(super) fn is_set(&self) -> bool {
        *self.lock()
    }

    pub(super) fn set(&self) {
        *self.lock() = true;
    }

    pub(super) fn clear(&self) {
        *self.lock() = false;
        self.done.notify_all();
    }

    /// Waits until the worker is free or `timeout` passed; true if it is free.
    pub(super) fn wait_done(&self, timeout: Duration) -> bool {
        let mut guard = self.lock();
        self.done.wait_while_for(&mut guard, |busy| *busy, timeout);
        !*guard
    }
}

/// What the streaming thread and the live worker share.
pub(super) struct Shared {
    pub(super) latest: Mutex<Option<Caption>>,
    /// The worker has a frame (queued or in analysis).
    pub(super) busy: Busy,
    /// Bumped on flush and stop: results of older jobs are dropped.
    pub(super) generation: AtomicU64,
    pub(super) serial: AtomicU64,
    /// The inference running now (either mode), so flush, stop and the `cancel`
    /// signal can stop it.
    running: Mutex<Option<Running>>,
    /// Going to READY: no new inference starts.
    closed: AtomicBool,
}

struct Running {
    request_id: Option<String>,
    interrupt: Interrupt,
}

impl Shared {
    pub(super) fn new() -> Self {
        Shared {
            latest: Mutex::new(None),
            busy: Busy::default(),
            generation: AtomicU64::new(0),
            serial: AtomicU64::new(0),
            running: Mutex::new(None),
            closed: AtomicBool::new(false),
        }
    }

    /// Runs one inference, cancellable through [`Shared::cancel`] meanwhile.
    pub(super) fn run(
        &self,
        florence: &Florence,
        image: &RgbImage,
        request: &Request,
        request_id: Option<&str>,
        interrupt: Interrupt,
    ) -> Result<Output, EngineError> {
        {
            let mut running = self.running.lock();
            if self.closed.load(Ordering::SeqCst) {
                interrupt.cancel();
            }
            *running = Some(Running {
                request_id: request_id.map(str::to_owned),
                interrupt: interrupt.clone(),
            });
        }
        let result = routed(|| florence.run_with(image, request, &interrupt));
        *self.running.lock() = None;
        result
    }

    /// Cancels the running inference and any that would start after it.
    pub(super) fn close(&self) {
        let running = self.running.lock();
        self.closed.store(true, Ordering::SeqCst);
        if let Some(r) = running.as_ref() {
            r.interrupt.cancel();
        }
    }

    /// Cancels the running inference if `request_id` is `None` or its id.
    pub(super) fn cancel(&self, request_id: Option<&str>) -> bool {
        let running = self.running.lock();
        match running.as_ref() {
            Some(r) if request_id.is_none() || r.request_id.as_deref() == request_id => {
                r.interrupt.cancel();
                true
            }
            _ => false,
        }
    }
}
