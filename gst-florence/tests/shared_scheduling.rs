//! Users of one shared model take fair turns on its graphs (engine `turns`):
//! a long answer on one user does not hold up another user's short ones, a
//! request that runs out of time while others run leaves alone, and every
//! request gets exactly the ids it gets on a model of its own. Real ONNX
//! Runtime on the tiny model, on threads of one process.

mod common;

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gstflorence::engine::registry;
use gstflorence::engine::task::Task;
use gstflorence::engine::{Florence, Interrupt, Interruption, Request};

use common::scratch::Scratch;
use common::{long_caption as long, scene, solo_ids, uncached_vision as options};

/// Requests running on the registry's model for `dir`.
fn in_flight(dir: &Path) -> usize {
    registry::loaded()
        .iter()
        .filter(|m| m.dir == dir)
        .map(|m| m.in_flight)
        .sum()
}

#[test]
fn a_long_answer_does_not_hold_up_short_ones_on_another_user_and_ids_stay_solo() {
    let scratch = Scratch::new("sched-fair");
    let dir = scratch.model("m");
    let img = scene();
    let long_req = long(1000);
    let captions = [Request::new(Task::Caption), {
        let mut beams = Request::new(Task::Od);
        beams.options.num_beams = Some(3);
        beams
    }];
    let mut want_short = solo_ids(&dir, &img, [&long_req, &captions[0], &captions[1]]);
    let want_long = want_short.remove(0);

    let (a, _) = Florence::shared(&dir, options()).unwrap();
    let (b, _) = Florence::shared(&dir, options()).unwrap();
    assert_eq!(a.model_id(), b.model_id());
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            let out = a.run(&img, &long_req);
            done_tx.send(out).unwrap();
        });
        // The long request has started (event: it counts on the model).
        let guard = Instant::now() + Duration::from_secs(60);
        while in_flight(&dir) == 0 {
            assert!(Instant::now() < guard, "the long request never started");
            std::thread::yield_now();
        }
        // b's short requests, one after another, all while a's runs.
        let mut waited = 0.0;
        for (r, want) in captions.iter().zip(&want_short) {
            let out = b.run(&img, r).unwrap();
            assert_eq!(&out.ids, want, "{:?} beside a long answer", r.task);
            waited += out.timings.queue_wait_ms;
        }
        // A request that runs out of time while the others run leaves alone.
        let late = b.run_with(
            &img,
            &long(1000),
            &Interrupt::with_deadline(Instant::now() + Duration::from_millis(30)),
        );
        common::assert_interrupted(&late, Interruption::DeadlineExceeded);
        assert!(
            done_rx.try_recv().is_err(),
            "the long answer ended before the short ones (b queued {waited} ms): \
             they waited for all of it"
        );
        assert!(in_flight(&dir) >= 1);
        let out = done_rx
            .recv_timeout(Duration::from_secs(600))
            .unwrap()
            .unwrap();
        assert_eq!(out.ids, want_long, "the long answer beside short ones");
    });
    assert_eq!(in_flight(&dir), 0);
}

#[test]
fn a_cancel_reaches_a_request_on_a_busy_shared_model_and_the_others_go_on() {
    let scratch = Scratch::new("sched-cancel");
    let dir = scratch.model("m");
    let img = scene();
    let req = long(400);
    let want = solo_ids(&dir, &img, [&req]).remove(0);

    let users: Vec<Florence> = (0..3)
        .map(|_| Florence::shared(&dir, options()).unwrap().0)
        .collect();
    let cancel = Interrupt::new();
    std::thread::scope(|s| {
        let runs: Vec<_> = users[..2]
            .iter()
            .map(|u| s.spawn(|| u.run(&img, &req)))
            .collect();
        let cancelled = s.spawn(|| users[2].run_with(&img, &long(1000), &cancel));
        let guard = Instant::now() + Duration::from_secs(60);
        while in_flight(&dir) < 3 {
            assert!(Instant::now() < guard, "never three requests at once");
            std::thread::yield_now();
        }
        cancel.cancel();
        let r = cancelled.join().unwrap();
        common::assert_interrupted(&r, Interruption::Cancelled);
        for run in runs {
            assert_eq!(run.join().unwrap().unwrap().ids, want);
        }
    });
    assert_eq!(in_flight(&dir), 0);
}
