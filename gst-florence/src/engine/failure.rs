//! A backend's device failing, told in terms every caller understands
//! (busy: retry later; failed: the next request reopens it), so the element
//! and the daemon map it to their answers without naming a backend's types.

use std::error::Error;

/// What a failed backend call means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Another process holds the device; the same request can succeed later.
    Busy,
    /// The device failed, went away or timed out; the next request reopens it.
    Device,
}

/// A backend's failure: its kind, and the backend's own error as the cause.
#[derive(Debug, thiserror::Error)]
#[error("{cause}")]
pub struct BackendFailure {
    pub kind: FailureKind,
    cause: Box<dyn Error + Send + Sync + 'static>,
}

impl BackendFailure {
    pub fn new(kind: FailureKind, cause: impl Error + Send + Sync + 'static) -> Self {
        BackendFailure {
            kind,
            cause: Box::new(cause),
        }
    }

    pub fn is_busy(&self) -> bool {
        self.kind == FailureKind::Busy
    }

    /// The backend's own error, for code that knows the backend (its tests).
    pub fn cause<T: Error + 'static>(&self) -> Option<&T> {
        self.cause.downcast_ref::<T>()
    }
}
