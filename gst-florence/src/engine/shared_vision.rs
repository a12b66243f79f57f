//! Vision features shared by every user of one model: an image that another
//! user (element instance, florenced worker) encoded a moment ago, or is
//! encoding right now, is not encoded again. Two florencecaption instances on
//! a `tee` asking different tasks of the same frame, or a client whose
//! `<CAPTION>` and `<OD>` of one image land on two florenced workers, run the
//! vision encoder once: the second waits for the first's features instead of
//! queueing a second encode of the same pixels behind it.
//!
//! Each user's own last image stays in its [`super::vision_cache::VisionCache`],
//! which other users' traffic never evicts; this keeps the model's
//! [`RECENT_IMAGES`] most recent images besides, and which ones are being
//! encoded. Features are the same whoever computed them (the same graph on
//! the same pixels), so answers do not change.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use super::error::EngineError;
use super::interrupt::{Interrupt, Wake};
use super::vision_cache::Features;

/// Images whose features the model keeps for all its users (about 1.8 MB
/// each for Florence-2-base at 768).
pub const RECENT_IMAGES: usize = 4;

#[derive(Debug, Default)]
struct State {
    /// Most recent first.
    recent: VecDeque<(u128, Arc<Features>)>,
    /// Images a user is encoding now.
    encoding: HashSet<u128>,
    /// Users waiting for another's encode (for tests to wait on).
    waiting: usize,
}

/// One model's recent and in-flight image features.
#[derive(Debug, Default)]
pub struct SharedVision {
    state: Mutex<State>,
    changed: Condvar,
}

/// What a user asking for an image's features gets.
pub enum Claim<'a> {
    /// Another user's features for this image.
    Ready(Arc<Features>),
    /// Nobody has them: this user encodes the image and hands the features
    /// over with [`Encoding::finish`] (dropped unfinished, the next waiter
    /// encodes it instead).
    Encode(Encoding<'a>),
}

/// This user's promise to encode an image the others wait for.
pub struct Encoding<'a> {
    shared: &'a SharedVision,
    key: u128,
}

impl Encoding<'_> {
    /// Keeps `features` for the model's users and wakes those waiting for them.
    pub fn finish(self, features: Arc<Features>) {
        {
            let mut state = self.shared.state.lock();
            state.recent.retain(|(k, _)| *k != self.key);
            state.recent.push_front((self.key, features));
            state.recent.truncate(RECENT_IMAGES);
        }
        // Drop removes the key from `encoding` and wakes the waiters.
    }
}

impl Drop for Encoding<'_> {
    fn drop(&mut self) {
        self.shared.state.lock().encoding.remove(&self.key);
        self.shared.changed.notify_all();
    }
}

impl SharedVision {
    /// The features of image `key` if a user has them, waiting while
    /// another user encodes it; otherwise this caller's turn to encode it.
    /// Leaves with [`EngineError::Interrupted`] on a cancel (which calls
    /// [`Wake::wake`]) or at the deadline.
    pub fn claim(&self, key: u128, interrupt: &Interrupt) -> Result<Claim<'_>, EngineError> {
        let mut state = self.state.lock();
        loop {
            let found = state.recent.iter().position(|(k, _)| *k == key);
            if let Some(entry) = found.and_then(|i| state.recent.remove(i)) {
                let features = entry.1.clone();
                state.recent.push_front(entry);
                return Ok(Claim::Ready(features));
            }
            if state.encoding.insert(key) {
                return Ok(Claim::Encode(Encoding { shared: self, key }));
            }
            interrupt.check()?;
            state.waiting += 1;
            match interrupt.deadline() {
                Some(deadline) => {
                    self.changed.wait_until(&mut state, deadline);
                }
                None => self.changed.wait(&mut state),
            }
            state.waiting -= 1;
        }
    }

    /// Drops the kept images' features (not the ones being encoded, which
    /// their waiters need): the next claim of any image encodes it again.
    pub fn forget_recent(&self) {
        self.state.lock().recent.clear();
    }

    /// Images kept now.
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.state.lock().recent.len()
    }

    /// Users waiting for another's encode now.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.state.lock().waiting
    }
}

impl Wake for SharedVision {
    fn wake(&self) {
        let _state = self.state.lock();
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::error::Interruption;
    use std::time::{Duration, Instant};

    fn features(v: f32) -> Arc<Features> {
        Arc::new(Features {
            data: vec![v; 4],
            tokens: 2,
            dim: 2,
        })
    }

    fn until_waiting(shared: &SharedVision, n: usize) {
        let guard = Instant::now() + Duration::from_secs(30);
        while shared.waiting() != n {
            assert!(Instant::now() < guard, "never {n} waiting");
            std::thread::yield_now();
        }
    }

    fn ready(claim: Claim<'_>) -> Arc<Features> {
        match claim {
            Claim::Ready(f) => f,
            Claim::Encode(_) => panic!("expected features"),
        }
    }

    #[test]
    fn a_user_waits_for_the_encode_in_flight_and_gets_its_features() {
        let shared = SharedVision::default();
        let Ok(Claim::Encode(encoding)) = shared.claim(1, &Interrupt::new()) else {
            panic!("the first user encodes");
        };
        std::thread::scope(|s| {
            let waiter = s.spawn(|| ready(shared.claim(1, &Interrupt::new()).unwrap()));
            until_waiting(&shared, 1);
            // Another image is not held up by it.
            assert!(matches!(
                shared.claim(2, &Interrupt::new()),
                Ok(Claim::Encode(_))
            ));
            encoding.finish(features(1.0));
            assert_eq!(waiter.join().unwrap().data, [1.0; 4]);
        });
        assert_eq!(shared.kept(), 1, "an unfinished encode keeps nothing");
    }

    #[test]
    fn an_encode_given_up_passes_to_a_waiter() {
        let shared = SharedVision::default();
        let Ok(Claim::Encode(encoding)) = shared.claim(1, &Interrupt::new()) else {
            panic!("the first user encodes");
        };
        std::thread::scope(|s| {
            let waiter = s.spawn(|| match shared.claim(1, &Interrupt::new()).unwrap() {
                Claim::Encode(e) => e.finish(features(2.0)),
                Claim::Ready(_) => panic!("nobody finished it"),
            });
            until_waiting(&shared, 1);
            drop(encoding);
            waiter.join().unwrap();
        });
        assert_eq!(
            ready(shared.claim(1, &Interrupt::new()).unwrap()).data,
            [2.0; 4]
        );
    }

    #[test]
    fn a_cancelled_or_expired_waiter_leaves_while_the_encode_goes_on() {
        let shared = SharedVision::default();
        let Ok(Claim::Encode(encoding)) = shared.claim(1, &Interrupt::new()) else {
            panic!("the first user encodes");
        };
        let cancel = Interrupt::new();
        std::thread::scope(|s| {
            let waiter = s.spawn(|| shared.claim(1, &cancel).map(|_| ()));
            until_waiting(&shared, 1);
            cancel.cancel();
            shared.wake();
            assert!(matches!(
                waiter.join().unwrap(),
                Err(EngineError::Interrupted(Interruption::Cancelled))
            ));
        });
        let late = Interrupt::with_deadline(Instant::now() + Duration::from_millis(20));
        assert!(matches!(
            shared.claim(1, &late).map(|_| ()),
            Err(EngineError::Interrupted(Interruption::DeadlineExceeded))
        ));
        encoding.finish(features(3.0));
        assert_eq!(shared.waiting(), 0);
        assert_eq!(
            ready(shared.claim(1, &Interrupt::new()).unwrap()).data,
            [3.0; 4]
        );
    }

    #[test]
    fn forgotten_images_are_encoded_again() {
        let shared = SharedVision::default();
        let Ok(Claim::Encode(e)) = shared.claim(1, &Interrupt::new()) else {
            panic!("new image");
        };
        e.finish(features(1.0));
        shared.forget_recent();
        assert_eq!(shared.kept(), 0);
        assert!(matches!(
            shared.claim(1, &Interrupt::new()),
            Ok(Claim::Encode(_))
        ));
    }

    #[test]
    fn it_keeps_the_most_recently_used_images() {
        let shared = SharedVision::default();
        for key in 0..RECENT_IMAGES as u128 {
            let Ok(Claim::Encode(e)) = shared.claim(key, &Interrupt::new()) else {
                panic!("new image");
            };
            e.finish(features(key as f32));
        }
        // Using image 0 makes it the most recent: image 1 goes first.
        ready(shared.claim(0, &Interrupt::new()).unwrap());
        let Ok(Claim::Encode(e)) = shared.claim(99, &Interrupt::new()) else {
            panic!("new image");
        };
        e.finish(features(99.0));
        assert_eq!(shared.kept(), RECENT_IMAGES);
        ready(shared.claim(0, &Interrupt::new()).unwrap());
        assert!(matches!(
            shared.claim(1, &Interrupt::new()),
            Ok(Claim::Encode(_))
        ));
    }
}
