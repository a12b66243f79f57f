//! A byte budget for request bodies in flight (`http.body_bytes_in_flight`).
//!
//! Every body reserves its size (its Content-Length, or the largest body of
//! its kind when it is chunked) before a byte of it is read, and keeps the
//! reservation until the handler has parsed it and decoded the image. A body
//! that does not fit is refused at once with 503 `overloaded` and Retry-After
//! rather than waiting: a waiting client still holds a connection and its
//! unread body, and a refusal tells it plainly to come back. Many clients
//! trickling near-limit bodies so cannot grow the daemon's memory past the
//! budget (plus what the queue holds).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes per semaphore permit: `acquire_many` counts in u32.
const UNIT: usize = 1024;

pub struct BodyBudget {
    units: Arc<Semaphore>,
    total_units: usize,
}

/// A body's share of the budget, given back when dropped.
#[derive(Debug)]
pub struct BodyPermit(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

impl BodyBudget {
    pub fn new(bytes: usize) -> BodyBudget {
        let total_units = bytes.div_ceil(UNIT).clamp(1, Semaphore::MAX_PERMITS);
        BodyBudget {
            units: Arc::new(Semaphore::new(total_units)),
            total_units,
        }
    }

    /// Reserves `bytes` now, or None when they do not fit.
    pub fn try_reserve(&self, bytes: usize) -> Option<BodyPermit> {
        let units = bytes.div_ceil(UNIT);
        if units == 0 {
            return Some(BodyPermit(None));
        }
        let units = u32::try_from(units).ok()?;
        self.units
            .clone()
            .try_acquire_many_owned(units)
            .ok()
            .map(|p| BodyPermit(Some(p)))
    }

    /// Bytes reserved now (a multiple of 1 KiB).
    pub fn in_use(&self) -> usize {
        (self.total_units - self.units.available_permits()) * UNIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_add_up_and_come_back() {
        let b = BodyBudget::new(10 * UNIT);
        let a = b.try_reserve(6 * UNIT).unwrap();
        assert_eq!(b.in_use(), 6 * UNIT);
        assert!(b.try_reserve(5 * UNIT).is_none());
        let c = b.try_reserve(1).unwrap();
        assert_eq!(b.in_use(), 7 * UNIT);
        drop(a);
        assert!(b.try_reserve(5 * UNIT).is_some());
        drop(c);
        assert_eq!(b.in_use(), 0);
        assert!(b.try_reserve(0).is_some());
    }
}
