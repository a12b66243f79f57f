//! Why a request gave no result: the one error type that travels from the
//! engine through the element's result (`error-kind`) to florenced, which
//! maps it to an HTTP status in one `match` (`florenced/src/http/error.rs`).

use std::fmt;
use std::str::FromStr;

use crate::engine::{EngineError, Interruption};

/// The `error-kind` of a request that produced no result (`FLORENCE_ERROR_*`
/// in florence.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Its task, input or parameters were invalid.
    InvalidRequest,
    /// The model failed on it.
    InferenceFailed,
    /// Its `deadline-us` passed while it waited or ran.
    TimedOut,
    /// Stopped by the `cancel` signal, a flush or a state change.
    Cancelled,
    /// Another process holds the Hailo device (retry later).
    DeviceBusy,
    /// The Hailo device failed (lost, timed out, ...); the next request reopens it.
    Device,
}

impl ErrorKind {
    /// Every kind, in florence.h's order.
    pub const ALL: [ErrorKind; 6] = [
        ErrorKind::InvalidRequest,
        ErrorKind::InferenceFailed,
        ErrorKind::TimedOut,
        ErrorKind::Cancelled,
        ErrorKind::DeviceBusy,
        ErrorKind::Device,
    ];

    /// The kind as the `error-kind` field spells it.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid-request",
            ErrorKind::InferenceFailed => "inference-failed",
            ErrorKind::TimedOut => "timed-out",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::DeviceBusy => "device-busy",
            ErrorKind::Device => "device-error",
        }
    }

    /// The kind of an engine error: the one place an [`EngineError`] is
    /// classified (the request's fault, its deadline, a cancel, the device,
    /// or the model).
    pub fn of(e: &EngineError) -> ErrorKind {
        match e {
            EngineError::Prompt(_)
            | EngineError::Parameter(_)
            | EngineError::Image(_)
            | EngineError::TaskUnavailable { .. } => ErrorKind::InvalidRequest,
            EngineError::Interrupted(Interruption::DeadlineExceeded) => ErrorKind::TimedOut,
            EngineError::Interrupted(Interruption::Cancelled) => ErrorKind::Cancelled,
            EngineError::Backend(f) if f.is_busy() => ErrorKind::DeviceBusy,
            EngineError::Backend(_) => ErrorKind::Device,
            _ => ErrorKind::InferenceFailed,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An `error-kind` that is none of [`ErrorKind::ALL`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "unknown error-kind {0:?} (known: invalid-request, inference-failed, timed-out, cancelled, device-busy, device-error)"
)]
pub struct UnknownErrorKind(pub String);

impl FromStr for ErrorKind {
    type Err = UnknownErrorKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownErrorKind(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_from_its_name() {
        for k in ErrorKind::ALL {
            assert_eq!(k.name().parse::<ErrorKind>(), Ok(k));
        }
        assert!("busy".parse::<ErrorKind>().is_err());
    }

    #[test]
    fn engine_errors_map_to_their_kind() {
        assert_eq!(
            ErrorKind::of(&EngineError::Interrupted(Interruption::DeadlineExceeded)),
            ErrorKind::TimedOut
        );
        assert_eq!(
            ErrorKind::of(&EngineError::Interrupted(Interruption::Cancelled)),
            ErrorKind::Cancelled
        );
        assert_eq!(
            ErrorKind::of(&EngineError::Parameter("num_beams".into())),
            ErrorKind::InvalidRequest
        );
    }
}
