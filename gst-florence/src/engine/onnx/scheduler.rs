//! The decode scheduler of one model with the batchable decoder: the decode
//! steps of its requests in flight, whoever's they are (element instances,
//! florenced workers), run as one [`Batch`]. A request joins between steps
//! and leaves alone when its search ends, its interrupt fires or its step
//! fails; its ids are the ones it gets alone (a row's numbers do not depend
//! on its neighbours, [`super::batched`]).
//!
//! Who drives the batch: the thread of the first request that reaches its
//! decoding while nobody leads (the leader) runs the steps for everyone;
//! the others hand over their request and wait for their answer. When the
//! leader's own request leaves, it hands the members still decoding back
//! and returns at once, and one of the waiting threads leads on. So a
//! request alone decodes on its own thread, step by step as before, the
//! engine keeps no thread of its own (a per-model decode thread would need
//! starting, stopping with the model's last user and the sessions shared
//! with it), and no request's answer waits for another's longer one.
//!
//! Fairness: a batched step takes one turn of the token embedding and one
//! of the decoder ([`crate::engine::turns`]), like one request's step, so
//! users of other graphs and models are not held up longer by a batch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Condvar, Mutex};

use super::batched::{Admitted, Batch, DecodeStats, Left};
use crate::engine::error::EngineError;
use crate::engine::interrupt::Wake;

/// The model's requests in their decoding, and the steps run so far.
#[derive(Default)]
pub(crate) struct DecodeScheduler {
    state: Mutex<State>,
    changed: Condvar,
    /// Steps run with n requests together, at index n - 1.
    steps: Mutex<Vec<u64>>,
    next: AtomicU64,
}

#[derive(Default)]
struct State {
    /// A thread is running the steps.
    leading: bool,
    /// Requests for the leader to take into its batch before its next step
    /// (newly admitted, or handed back by a leader that left).
    waiting: Vec<(u64, Admitted)>,
    /// Requests in the leader's batch.
    in_batch: usize,
    /// Answers for the threads that wait for them.
    answers: HashMap<u64, Left<u64>>,
}

impl Wake for DecodeScheduler {
    /// A cancel wakes the waiting threads: one whose request has not joined
    /// the batch yet leaves at once.
    fn wake(&self) {
        let _state = self.state.lock();
        self.changed.notify_all();
    }
}

impl DecodeScheduler {
    /// Decodes `request` in the model's batch (`batch` makes an empty one):
    /// as its leader, or handing it to the leader and waiting for its answer.
    pub(crate) fn decode<'a>(
        &self,
        request: Admitted,
        batch: impl Fn() -> Batch<'a, u64>,
    ) -> Left<u64> {
        let me = self.next.fetch_add(1, Ordering::Relaxed);
        let interrupt = request.interrupt.clone();
        let mut state = self.state.lock();
        state.waiting.push((me, request));
        self.changed.notify_all();
        loop {
            if let Some(answer) = state.answers.remove(&me) {
                return answer;
            }
            if !state.leading {
                state.leading = true;
                drop(state);
                return self.lead(me, batch());
            }
            // Not yet in the batch: leave now; in it: the leader drops it
            // before its next step and answers with the error.
            if let Err(e) = interrupt.check()
                && let Some(i) = state.waiting.iter().position(|(k, _)| *k == me)
            {
                let (key, request) = state.waiting.remove(i);
                return Left {
                    key,
                    result: Err(e),
                    stats: request.stats,
                };
            }
            // Past the deadline and in the batch: the leader's next answer wakes it.
            match interrupt.deadline().filter(|_| interrupt.check().is_ok()) {
                Some(deadline) => {
                    self.changed.wait_until(&mut state, deadline);
                }
                None => self.changed.wait(&mut state),
            }
        }
    }

    /// Runs steps until `me` leaves; takes in the waiting requests before
    /// each step and answers the others that leave.
    fn lead(&self, me: u64, mut batch: Batch<'_, u64>) -> Left<u64> {
        let mut leading = Leading {
            scheduler: self,
            me,
            members: Vec::new(),
        };
        loop {
            {
                let mut state = self.state.lock();
                for (key, request) in state.waiting.drain(..) {
                    leading.members.push(key);
                    batch.join(key, request);
                }
                state.in_batch = batch.len();
            }
            let left = batch.step();
            if batch.stepped() > 0 {
                let mut steps = self.steps.lock();
                if steps.len() < batch.stepped() {
                    steps.resize(batch.stepped(), 0);
                }
                steps[batch.stepped() - 1] += 1;
            }
            let mut state = self.state.lock();
            let mut mine = None;
            for l in left {
                leading.members.retain(|&k| k != l.key);
                if l.key == me {
                    mine = Some(l);
                } else {
                    state.answers.insert(l.key, l);
                }
            }
            state.in_batch = batch.len();
            self.changed.notify_all();
            if let Some(mine) = mine {
                // The others decode on under another leader, first in line.
                leading.members.clear();
                state.waiting.splice(0..0, batch.into_members());
                state.in_batch = 0;
                state.leading = false;
                return mine;
            }
        }
    }

    /// Requests decoding now (in the batch or about to join it).
    pub(crate) fn decoding(&self) -> usize {
        let state = self.state.lock();
        state.in_batch + state.waiting.len()
    }

    /// Steps run so far with 1, 2, ... requests together.
    pub(crate) fn steps(&self) -> Vec<u64> {
        self.steps.lock().clone()
    }
}

/// The leader's batch while it leads. Dropped on the way out of a panic in
/// a step: the batch's members are gone with the leader's stack, so their
/// threads get an error instead of waiting for ever, and the next request
/// leads.
struct Leading<'s> {
    scheduler: &'s DecodeScheduler,
    me: u64,
    /// Keys of the requests in the batch; empty once handed back.
    members: Vec<u64>,
}

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let mut state = self.scheduler.state.lock();
        for &key in self.members.iter().filter(|&&k| k != self.me) {
            let message = "the thread running its decode batch panicked".to_owned();
            state.answers.insert(
                key,
                Left {
                    key,
                    result: Err(EngineError::Inference {
                        stage: "decoder",
                        message,
                    }),
                    stats: DecodeStats::default(),
                },
            );
        }
        state.in_batch = 0;
        state.leading = false;
        self.scheduler.changed.notify_all();
    }
}
