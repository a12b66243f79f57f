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
//! Who joins: a waiting request joins before the next step if the run with
//! its rows would slow no member, itself included, beyond the bound each
//! accepts ([`super::join_bound`], from the runs timed so far); else it
//! waits, first in line, for members to leave (later arrivals do not pass
//! it). An empty batch takes the first in line, and members a leaving
//! leader handed back rejoin whatever the bound (they ran together already).
//!
//! Who is waited for: requests on their way to the batch (encoding their
//! image and prompt, [`DecodeScheduler::arriving`]) hold the batch before
//! its next step, so that they join it sooner instead of their encoders
//! sharing the cores with steps of a smaller batch; each member is held
//! at most the spare part of its bound ([`super::join_bound::hold_left`]),
//! and a member's cancel or deadline ends the hold.
//!
//! Fairness: a batched step takes one turn of the token embedding and one
//! of the decoder ([`crate::engine::turns`]), like one request's step, so
//! users of other graphs and models are not held up longer by a batch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::batched::{Admitted, Batch, DecodeStats, Left};
use super::join_bound::{RunTimes, admits, hold_left};
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
    /// Requests for the leader to take into its batch before a step, in
    /// line: handed back by a leader that left (first), or newly admitted.
    waiting: Vec<Waiting>,
    /// Requests in the leader's batch.
    in_batch: usize,
    /// Answers for the threads that wait for them.
    answers: HashMap<u64, Left<u64>>,
    /// The batch's decoder runs so far, for the join bound.
    runs: RunTimes,
    /// Requests on their way to the batch ([`DecodeScheduler::arriving`]).
    arriving: usize,
}

impl State {
    /// `key`'s request, if it waits to join and its interrupt fired: out of
    /// the line, with the error.
    fn cancelled(&mut self, key: u64) -> Option<Left<u64>> {
        let i = self.waiting.iter().position(|w| w.key == key)?;
        let e = self.waiting[i].request.interrupt.check().err()?;
        let w = self.waiting.remove(i);
        Some(Left {
            key,
            result: Err(e),
            stats: w.request.stats,
        })
    }
}

struct Waiting {
    key: u64,
    request: Admitted,
    /// Handed back by a leader that left: it was decoding in a batch.
    handed_back: bool,
}

impl Wake for DecodeScheduler {
    /// A cancel or a deadline (the request's run-options timer) wakes the
    /// waiting threads: one whose request has not joined the batch yet
    /// leaves at once, and a held batch stops holding.
    fn wake(&self) {
        let _state = self.state.lock();
        self.changed.notify_all();
    }
}

/// A request on its way to the model's batch, from [`DecodeScheduler::arriving`]
/// until dropped.
pub(crate) struct Arriving<'a>(&'a DecodeScheduler);

impl Drop for Arriving<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state.lock();
        state.arriving -= 1;
        self.0.changed.notify_all();
    }
}

impl DecodeScheduler {
    /// A request will decode in the batch once it has encoded its image and
    /// prompt: the batch is held for it until the guard drops (or a
    /// member's bound ends the hold).
    pub(crate) fn arriving(&self) -> Arriving<'_> {
        self.state.lock().arriving += 1;
        Arriving(self)
    }

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
        state.waiting.push(Waiting {
            key: me,
            request,
            handed_back: false,
        });
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
            if let Some(left) = state.cancelled(me) {
                return left;
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

    /// Runs steps until `me` leaves; takes in the waiting requests the
    /// bound lets join before each step and answers the others that leave.
    fn lead(&self, me: u64, mut batch: Batch<'_, u64>) -> Left<u64> {
        let mut leading = Leading {
            scheduler: self,
            me,
            members: Vec::new(),
        };
        loop {
            let mut state = self.state.lock();
            // Its own request waiting to join: no step checks its interrupt.
            if let Some(mine) = state.cancelled(me) {
                return self.step_down(state, batch, &mut leading, mine);
            }
            take_in(&mut state, &mut batch, &mut leading);
            if state.arriving > 0 && self.hold(&mut state, &mut batch) {
                if let Some(mine) = state.cancelled(me) {
                    return self.step_down(state, batch, &mut leading, mine);
                }
                take_in(&mut state, &mut batch, &mut leading);
            }
            drop(state);
            let left = batch.step();
            if batch.stepped() > 0 {
                let mut steps = self.steps.lock();
                if steps.len() < batch.stepped() {
                    steps.resize(batch.stepped(), 0);
                }
                steps[batch.stepped() - 1] += 1;
            }
            let mut state = self.state.lock();
            if let Some((rows, took)) = batch.last_run() {
                state.runs.record(rows, took);
            }
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
                return self.step_down(state, batch, &mut leading, mine);
            }
        }
    }

    /// Holds the batch while requests are on their way to it, within its
    /// members' bounds, until a member's interrupt fires (a cancel or a
    /// deadline wakes the scheduler: [`Wake`]); whether it held.
    fn hold(&self, state: &mut MutexGuard<'_, State>, batch: &mut Batch<'_, u64>) -> bool {
        let left = hold_left(&state.runs, &batch.loads());
        if left.is_zero() {
            return false;
        }
        let start = Instant::now();
        let until = start + left;
        while state.arriving > 0 && !batch.interrupted() {
            if self.changed.wait_until(state, until).timed_out() {
                break;
            }
        }
        batch.held(start.elapsed());
        true
    }

    /// The leader's request left: the others decode on under another
    /// leader, first in line.
    fn step_down(
        &self,
        mut state: MutexGuard<'_, State>,
        batch: Batch<'_, u64>,
        leading: &mut Leading<'_>,
        mine: Left<u64>,
    ) -> Left<u64> {
        leading.members.clear();
        let handed_back = batch
            .into_members()
            .into_iter()
            .map(|(key, request)| Waiting {
                key,
                request,
                handed_back: true,
            });
        state.waiting.splice(0..0, handed_back);
        state.in_batch = 0;
        state.leading = false;
        self.changed.notify_all();
        mine
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

/// Moves the waiting requests that may join into `batch`. They count as
/// in the batch from here: a hold before its next step keeps them decoding
/// ([`DecodeScheduler::decoding`]), not gone from both counts.
fn take_in(state: &mut State, batch: &mut Batch<'_, u64>, leading: &mut Leading<'_>) {
    let joining = joining(state, batch);
    for w in state.waiting.drain(..joining) {
        leading.members.push(w.key);
        batch.join(w.key, w.request);
    }
    state.in_batch = batch.len();
}

/// How many of the first waiting requests join `batch` before its next
/// step: those handed back, then new ones in line while the bound lets each
/// join (an empty batch takes the first whatever its bound).
fn joining(state: &State, batch: &Batch<'_, u64>) -> usize {
    let line = state.runs.line();
    let mut loads = batch.loads();
    let mut n = 0;
    for w in &state.waiting {
        let load = w.request.load();
        if !w.handed_back && !admits(line, &loads, load) {
            break;
        }
        loads.push(load);
        n += 1;
    }
    n
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
