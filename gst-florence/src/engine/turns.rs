//! Fair turns on one thing several users need in turn (a graph of a shared
//! model): first come, first served by ticket, not by whichever thread wins
//! a mutex after it is released.
//!
//! Every request runs its stages one after another, so it holds at most one
//! ticket per graph at a time: FIFO tickets are round robin across users. A
//! stream decoding a long answer takes one decoder step per turn, and another
//! stream's short request waits for at most one step of each user ahead of it,
//! never for the whole long answer.
//!
//! A waiter leaves the queue as soon as its request is cancelled or its
//! deadline passes (with the usual [`EngineError::Interrupted`]); its ticket is
//! skipped, so it never holds up the users behind it. A cancel wakes the
//! waiters through [`Turns::waker`], which the request's stop hook calls.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::error::EngineError;
use super::interrupt::{Interrupt, Wake};

/// The queue: tickets handed out and the one being served.
#[derive(Debug, Default)]
struct Queue {
    next: u64,
    serving: u64,
    /// Tickets whose holders left before their turn.
    abandoned: BTreeSet<u64>,
}

impl Queue {
    /// The turn passes to the next ticket still waiting.
    fn advance(&mut self) {
        self.serving += 1;
        while self.abandoned.remove(&self.serving) {
            self.serving += 1;
        }
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        let issued = (self.next - self.serving) as usize;
        issued.saturating_sub(self.abandoned.len())
    }
}

/// The ticket counter of one [`Turns`], shared with the stop hooks that wake
/// its waiters.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    queue: Mutex<Queue>,
    turn: Condvar,
}

impl Wake for Gate {
    /// Wakes every waiter to check its interrupt. Taking the queue's lock
    /// first means a waiter is either before its check (and sees the cancel)
    /// or already waiting (and gets the notification).
    fn wake(&self) {
        let _queue = self.queue.lock();
        self.turn.notify_all();
    }
}

/// `T`, used by one holder at a time, in the order they asked.
#[derive(Debug)]
pub(crate) struct Turns<T> {
    gate: Arc<Gate>,
    /// Only the holder of the turn locks it, so it is never contended.
    value: Mutex<T>,
}

/// One holder's turn: `T` until dropped, then the next ticket's.
pub(crate) struct Turn<'a, T> {
    value: MutexGuard<'a, T>,
    gate: &'a Gate,
    /// How long this holder queued for it.
    pub(crate) waited: Duration,
}

impl<T> std::ops::Deref for Turn<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> std::ops::DerefMut for Turn<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T> Drop for Turn<'_, T> {
    fn drop(&mut self) {
        self.gate.queue.lock().advance();
        self.gate.turn.notify_all();
    }
}

impl<T> Turns<T> {
    pub(crate) fn new(value: T) -> Self {
        Turns {
            gate: Arc::default(),
            value: Mutex::new(value),
        }
    }

    /// The gate, for a stop hook that wakes this queue's waiters.
    pub(crate) fn waker(&self) -> Arc<Gate> {
        self.gate.clone()
    }

    /// Users queued or holding the turn now.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.gate.queue.lock().waiting()
    }

    /// The turn now if nobody holds it or waits for it (a housekeeping task
    /// that must not delay users, such as releasing an idle device).
    pub(crate) fn try_take(&self) -> Option<Turn<'_, T>> {
        let gate = &*self.gate;
        let mut queue = gate.queue.lock();
        if queue.serving != queue.next {
            return None;
        }
        queue.next += 1;
        drop(queue);
        Some(Turn {
            value: self.value.lock(),
            gate,
            waited: Duration::ZERO,
        })
    }

    /// Waits for this caller's turn, or leaves the queue when `interrupt`
    /// is cancelled or past its deadline.
    pub(crate) fn take(&self, interrupt: &Interrupt) -> Result<Turn<'_, T>, EngineError> {
        self.queue_for(|| interrupt.check(), interrupt.deadline())
    }

    /// Waits for this caller's turn however long it takes (device set-up
    /// and release, which no request's cancel concerns).
    pub(crate) fn take_uninterrupted(&self) -> Turn<'_, T> {
        match self.queue_for(|| Ok::<(), Infallible>(()), None) {
            Ok(turn) => turn,
            Err(never) => match never {},
        }
    }

    /// Queues for a ticket; leaves (abandoning it) when `leave` says so,
    /// checked on every wake-up and at `deadline`.
    fn queue_for<E>(
        &self,
        leave: impl Fn() -> Result<(), E>,
        deadline: Option<Instant>,
    ) -> Result<Turn<'_, T>, E> {
        let asked = Instant::now();
        let gate = &*self.gate;
        let mut queue = gate.queue.lock();
        let ticket = queue.next;
        queue.next += 1;
        while queue.serving != ticket {
            if let Err(e) = leave() {
                queue.abandoned.insert(ticket);
                return Err(e);
            }
            match deadline {
                Some(deadline) => {
                    gate.turn.wait_until(&mut queue, deadline);
                }
                None => gate.turn.wait(&mut queue),
            }
        }
        drop(queue);
        Ok(Turn {
            value: self.value.lock(),
            gate,
            waited: asked.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::error::Interruption;
    use std::sync::mpsc;

    /// Waits (polling) until `n` users are queued or served.
    fn until_waiting<T>(turns: &Turns<T>, n: usize) {
        let guard = Instant::now() + Duration::from_secs(30);
        while turns.waiting() != n {
            assert!(Instant::now() < guard, "never {n} in the queue");
            std::thread::yield_now();
        }
    }

    #[test]
    fn turns_go_in_the_order_they_were_asked_for() {
        let turns = Arc::new(Turns::new(Vec::new()));
        let first = turns.take(&Interrupt::new()).unwrap();
        let mut threads = Vec::new();
        for user in 0..4 {
            let t = turns.clone();
            threads.push(std::thread::spawn(move || {
                t.take(&Interrupt::new()).unwrap().push(user);
            }));
            // Each queues behind the one before it.
            until_waiting(&turns, user + 2);
        }
        drop(first);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*turns.value.lock(), vec![0, 1, 2, 3]);
        assert_eq!(turns.waiting(), 0);
    }

    #[test]
    fn a_cancelled_waiter_leaves_at_once_and_the_next_one_gets_the_turn() {
        let turns = Arc::new(Turns::new(Vec::new()));
        let held = turns.take(&Interrupt::new()).unwrap();
        let cancel = Interrupt::new();
        let (left, gone) = mpsc::channel();
        let waiter = {
            let (t, i) = (turns.clone(), cancel.clone());
            std::thread::spawn(move || {
                let r = t.take(&i).map(|_| ());
                left.send(r).unwrap();
            })
        };
        until_waiting(&turns, 2);
        let behind = {
            let t = turns.clone();
            std::thread::spawn(move || t.take(&Interrupt::new()).unwrap().push("behind"))
        };
        until_waiting(&turns, 3);
        cancel.cancel();
        turns.waker().wake();
        // It leaves while the turn is still held by someone else.
        let r = gone.recv_timeout(Duration::from_secs(30)).unwrap();
        assert!(matches!(
            r,
            Err(EngineError::Interrupted(Interruption::Cancelled))
        ));
        waiter.join().unwrap();
        assert_eq!(turns.waiting(), 2);
        drop(held);
        behind.join().unwrap();
        assert_eq!(*turns.value.lock(), vec!["behind"]);
        assert_eq!(turns.waiting(), 0);
    }

    #[test]
    fn try_take_gives_the_turn_only_when_nobody_holds_or_waits_for_it() {
        let turns = Arc::new(Turns::new(0u32));
        let mut free = turns.try_take().expect("nobody holds it");
        *free += 1;
        assert!(turns.try_take().is_none(), "held");
        drop(free);
        let held = turns.take(&Interrupt::new()).unwrap();
        let waiter = {
            let t = turns.clone();
            std::thread::spawn(move || *t.take(&Interrupt::new()).unwrap() += 10)
        };
        until_waiting(&turns, 2);
        drop(held);
        waiter.join().unwrap();
        assert_eq!(turns.waiting(), 0);
        assert_eq!(*turns.try_take().expect("free again"), 11);
        assert_eq!(turns.waiting(), 0, "try_take's turn was handed back");
    }

    #[test]
    fn a_waiter_past_its_deadline_leaves_without_blocking_others() {
        let turns = Arc::new(Turns::new(0u32));
        let held = turns.take(&Interrupt::new()).unwrap();
        let deadline = Interrupt::with_deadline(Instant::now() + Duration::from_millis(50));
        let r = turns.take(&deadline).map(|_| ());
        assert!(matches!(
            r,
            Err(EngineError::Interrupted(Interruption::DeadlineExceeded))
        ));
        assert_eq!(turns.waiting(), 1);
        drop(held);
        // The abandoned ticket is skipped.
        let mut next = turns.take(&Interrupt::new()).unwrap();
        *next += 1;
        drop(next);
        assert_eq!(turns.waiting(), 0);
    }
}
