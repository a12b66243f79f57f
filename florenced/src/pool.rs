//! The pipelines that take new requests, and those a reload replaced that are
//! still finishing the requests they had when it happened.

use parking_lot::{Mutex, RwLock};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::worker::Workers;

#[derive(Default)]
pub struct Pool {
    current: RwLock<Option<Arc<Workers>>>,
    retiring: Mutex<Vec<Arc<Workers>>>,
}

impl Pool {
    /// The pipelines new requests go to (None until the first load ends).
    pub fn get(&self) -> Option<Arc<Workers>> {
        self.current.read().clone()
    }

    /// Makes `next` take the new requests; the previous pipelines finish their
    /// queued and running requests, then stop and release their model.
    pub fn replace(&self, next: Arc<Workers>) {
        let previous = self.current.write().replace(next);
        let mut retiring = self.retiring.lock();
        retiring.retain(|w| !w.stopped());
        if let Some(p) = previous {
            p.retire();
            retiring.push(p);
        }
    }

    fn all(&self) -> Vec<Arc<Workers>> {
        let mut all: Vec<_> = self.retiring.lock().clone();
        all.extend(self.get());
        all
    }

    /// Jobs admitted and not yet answered, on every generation.
    pub fn in_flight(&self) -> usize {
        self.all()
            .iter()
            .map(|w| w.in_flight.load(Ordering::SeqCst))
            .sum()
    }

    pub fn queued(&self) -> usize {
        self.all().iter().map(|w| w.queued()).sum()
    }

    pub fn running(&self) -> usize {
        self.all()
            .iter()
            .map(|w| w.running.load(Ordering::SeqCst))
            .sum()
    }

    /// See [`Workers::abort`]: (queued jobs refused, inferences being cancelled).
    pub fn abort(&self) -> (usize, usize) {
        self.all()
            .iter()
            .map(|w| w.abort())
            .fold((0, 0), |(a, b), (c, d)| (a + c, b + d))
    }

    /// Stops every pipeline, waiting until `deadline` at most; true when all stopped.
    pub fn shutdown(&self, deadline: Instant) -> bool {
        // Every generation is told to stop, even after one that did not in time.
        let late = self
            .all()
            .iter()
            .filter(|w| !w.shutdown(deadline.saturating_duration_since(Instant::now())))
            .count();
        late == 0
    }
}
