//! The decode scheduler (engine `onnx/scheduler.rs`): requests in flight on
//! one shared model decode their steps together in one batch, each with the
//! ids it gets alone; a request cancelled, past its deadline or failing
//! leaves alone and the others finish as if it had never been there. Real
//! threads, real ONNX Runtime, the tiny model (which has the batchable
//! decoder). The batch is observed through the engine: the registry's
//! `decoding` and `decode_steps`, and each answer's `decode_batch`.

mod common;

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gstflorence::engine::preprocess::RgbImage;
use gstflorence::engine::registry::{self, LoadedModel};
use gstflorence::engine::task::Task;
use gstflorence::engine::{
    EngineError, Florence, Interrupt, Interruption, Output, Request, SessionOptions,
};

use common::scratch::Scratch;
use common::{long_caption as long, scene, solo_ids, uncached_vision as options};

fn with_beams(task: Task, beams: usize) -> Request {
    let mut r = Request::new(task);
    r.options.num_beams = Some(beams);
    r
}

/// Mixed tasks, greedy, beams and sampling.
fn mixed() -> Vec<Request> {
    let mut sampled = with_beams(Task::DetailedCaption, 1);
    sampled.options.temperature = Some(0.7);
    sampled.options.top_k = Some(50);
    sampled.options.seed = Some(7);
    vec![
        with_beams(Task::Caption, 1),
        with_beams(Task::Od, 3),
        with_beams(Task::Caption, 2),
        with_beams(Task::Ocr, 1),
        sampled,
    ]
}

/// A 1000-token answer and a caption of 2 beams, with the ids each gets
/// alone on `img`.
fn long_and_caption(dir: &Path, img: &RgbImage) -> ([Request; 2], Vec<Vec<u32>>) {
    let requests = [long(1000), with_beams(Task::Caption, 2)];
    let want = solo_ids(dir, img, &requests);
    (requests, want)
}

/// The registry's entry for the model loaded from `dir`.
fn model(dir: &Path) -> LoadedModel {
    registry::loaded()
        .into_iter()
        .find(|m| m.dir == dir)
        .expect("the shared model is loaded")
}

/// The model's decoder runs by how many requests each advanced, once every
/// request has left (none in flight or decoding).
fn idle_decode_steps(dir: &Path) -> Vec<u64> {
    let m = model(dir);
    assert_eq!((m.in_flight, m.decoding), (0, 0));
    m.decode_steps
}

/// Decoder runs that advanced more than one request.
fn shared_runs(steps: &[u64]) -> u64 {
    steps.iter().skip(1).sum()
}

/// Waits (polling the engine's counter) until at least `n` requests decode.
fn until_decoding(dir: &Path, n: usize) {
    let guard = Instant::now() + Duration::from_secs(60);
    while model(dir).decoding < n {
        assert!(Instant::now() < guard, "never {n} requests decoding");
        std::thread::yield_now();
    }
}

fn users(dir: &Path, n: usize) -> Vec<Florence> {
    users_with(dir, &vec![options(); n])
}

/// A user of the shared model for each of `options`.
fn users_with(dir: &Path, options: &[SessionOptions]) -> Vec<Florence> {
    let users: Vec<Florence> = options
        .iter()
        .map(|o| Florence::shared(dir, o.clone()).unwrap().0)
        .collect();
    assert!(users.iter().all(|u| u.model_id() == users[0].model_id()));
    users
}

/// A user's options accepting `decode_slowdown`.
fn slowdown(decode_slowdown: f64) -> SessionOptions {
    SessionOptions {
        decode_slowdown,
        ..options()
    }
}

/// The leader's answer, once it comes (the long request decodes on).
fn finish(done: &mpsc::Receiver<Result<Output, EngineError>>) -> Output {
    done.recv_timeout(Duration::from_secs(600))
        .unwrap()
        .unwrap()
}

#[test]
fn concurrent_requests_decode_in_one_batch_with_their_solo_ids() {
    let scratch = Scratch::new("decode-batch");
    let dir = scratch.model("m");
    let img = scene();
    let long_req = long(1000);
    let requests = mixed();
    let want_long = solo_ids(&dir, &img, std::slice::from_ref(&long_req)).remove(0);
    let want = solo_ids(&dir, &img, &requests);

    let users = users(&dir, 1 + requests.len());
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| done_tx.send(users[0].run(&img, &long_req)).unwrap());
        until_decoding(&dir, 1);
        // All at once, each on its own user and thread, while the long one decodes.
        let runs: Vec<_> = requests
            .iter()
            .zip(&users[1..])
            .map(|(r, u)| s.spawn(|| u.run(&img, r)))
            .collect();
        let outs: Vec<Output> = runs
            .into_iter()
            .map(|r| r.join().unwrap().unwrap())
            .collect();
        assert!(
            done_rx.try_recv().is_err(),
            "the long answer ended first: the others did not decode beside it"
        );
        for ((r, out), want) in requests.iter().zip(&outs).zip(&want) {
            assert_eq!(&out.ids, want, "{:?} in a batch", r.task);
            assert!(
                out.timings.decode_batch >= 2,
                "{:?} decoded alone beside a decoding request",
                r.task
            );
        }
        let out = finish(&done_rx);
        assert_eq!(out.ids, want_long, "the long answer in a batch");
        let widest = outs.iter().map(|o| o.timings.decode_batch).max().unwrap();
        assert!(out.timings.decode_batch >= widest);
    });
    let steps = idle_decode_steps(&dir);
    assert!(
        shared_runs(&steps) > 0,
        "no decoder run held two requests: {steps:?}"
    );
}

#[test]
fn a_request_cancelled_or_past_its_deadline_in_a_batch_leaves_alone() {
    let scratch = Scratch::new("decode-batch-cancel");
    let dir = scratch.model("m");
    let img = scene();
    let ([long_req, caption], want) = long_and_caption(&dir, &img);

    let users = users(&dir, 4);
    let cancel = Interrupt::new();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| done_tx.send(users[0].run(&img, &long_req)).unwrap());
        until_decoding(&dir, 1);
        let cancelled = s.spawn(|| users[1].run_with(&img, &long(1000), &cancel));
        until_decoding(&dir, 2);
        cancel.cancel();
        let r = cancelled.join().unwrap();
        common::assert_interrupted(&r, Interruption::Cancelled);
        // A long request whose deadline passes while it decodes.
        let late = users[2].run_with(
            &img,
            &long(1000),
            &Interrupt::with_deadline(Instant::now() + Duration::from_millis(400)),
        );
        common::assert_interrupted(&late, Interruption::DeadlineExceeded);
        let out = users[3].run(&img, &caption).unwrap();
        assert_eq!(out.ids, want[1], "a caption beside them");
        assert!(out.timings.decode_batch >= 2);
        assert!(done_rx.try_recv().is_err(), "the long answer ended first");
        assert_eq!(finish(&done_rx).ids, want[0], "the long answer beside them");
    });
    idle_decode_steps(&dir);
}

#[test]
fn a_failing_request_fails_alone_and_its_batch_decodes_on() {
    // The token embedding cut to 1000 rows: every prompt here and the
    // answers of the long request and the caption stay below it, while
    // object detection with 3 beams feeds a token above it a few steps in,
    // inside a batched step: ONNX Runtime fails that run.
    const ROWS: u32 = 1000;
    let scratch = Scratch::new("decode-batch-fault");
    let full = scratch.model("full");
    let dir = scratch.path().join("short");
    common::model_copies::model_with_embedding_rows(&full, &dir, u64::from(ROWS));
    let img = scene();
    let long_req = long(1000);
    let caption = with_beams(Task::Caption, 1);
    let od = with_beams(Task::Od, 3);
    let want = solo_ids(
        &full,
        &img,
        &[long_req.clone(), caption.clone(), od.clone()],
    );
    assert!(want[..2].iter().flatten().all(|&id| id < ROWS));
    assert!(
        want[2][..want[2].len() - 1].iter().any(|&id| id >= ROWS),
        "the detection's answer no longer feeds a token past the table: {:?}",
        want[2]
    );

    let users = users(&dir, 4);
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| done_tx.send(users[0].run(&img, &long_req)).unwrap());
        until_decoding(&dir, 1);
        let failed = users[1].run(&img, &od);
        assert!(
            matches!(failed, Err(EngineError::Inference { .. })),
            "{failed:?}"
        );
        // A bad prompt fails before it decodes, alone too.
        let bad = users[2].run(&img, &Request::new(Task::CaptionToPhraseGrounding));
        assert!(matches!(bad, Err(EngineError::Prompt(_))), "{bad:?}");
        let out = users[3].run(&img, &caption).unwrap();
        assert_eq!(out.ids, want[1], "a caption after the failure");
        assert!(out.timings.decode_batch >= 2);
        assert!(done_rx.try_recv().is_err(), "the long answer ended first");
        assert_eq!(
            finish(&done_rx).ids,
            want[0],
            "the long answer beside a failure"
        );
    });
    let steps = idle_decode_steps(&dir);
    assert!(shared_runs(&steps) > 0, "{steps:?}");
}

#[test]
fn a_member_that_accepts_no_slowdown_decodes_alone_and_the_joiner_waits() {
    let scratch = Scratch::new("decode-batch-bound");
    let dir = scratch.model("m");
    let img = scene();
    let ([long_req, caption], want) = long_and_caption(&dir, &img);

    // The long request's user accepts no slowdown; the caption's the default.
    let users = users_with(&dir, &[slowdown(1.0), options(), options()]);
    let cancel = Interrupt::new();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| done_tx.send(users[0].run(&img, &long_req)).unwrap());
        until_decoding(&dir, 1);
        // A request waiting to join leaves at its cancel, not at its turn.
        let waiting = s.spawn(|| users[2].run_with(&img, &caption, &cancel));
        until_decoding(&dir, 2);
        cancel.cancel();
        let r = waiting.join().unwrap();
        common::assert_interrupted(&r, Interruption::Cancelled);
        assert!(done_rx.try_recv().is_err(), "the long answer ended first");
        let out = users[1].run(&img, &caption).unwrap();
        assert_eq!(out.ids, want[1], "the caption after waiting");
        assert_eq!(out.timings.decode_batch, 1, "the caption joined the batch");
        let long_out = finish(&done_rx);
        assert_eq!(long_out.ids, want[0]);
        assert_eq!(
            long_out.timings.decode_batch, 1,
            "the long request shared a run"
        );
    });
    let steps = idle_decode_steps(&dir);
    assert_eq!(shared_runs(&steps), 0, "{steps:?}");
}

/// A request on its way to the batch (encoding its image and prompt; here
/// the test's own, `Florence::arriving`, for as long as the test says)
/// holds the batch before its next step: no decoder run while it is on its
/// way, until it arrives, a member's bound runs out, or a member's cancel
/// or deadline comes.
#[test]
fn the_batch_waits_for_a_request_on_its_way_within_its_members_bounds() {
    let scratch = Scratch::new("decode-batch-hold");
    let dir = scratch.model("m");
    let img = scene();
    let ([long_req, caption], want) = long_and_caption(&dir, &img);

    // The long request's user would wait a million times its decoding
    // alone (hours on this model): only the arrival or an interrupt ends
    // its hold within the test's time.
    let users = users_with(&dir, &[slowdown(1e6), options()]);
    // Nothing is held before a run has been timed.
    assert_eq!(users[1].run(&img, &caption).unwrap().ids, want[1]);

    let (done_tx, done_rx) = mpsc::channel();
    std::thread::scope(|s| {
        let on_its_way = users[1].arriving();
        let before = model(&dir).decode_steps;
        s.spawn(|| done_tx.send(users[0].run(&img, &long_req)).unwrap());
        until_decoding(&dir, 1);
        // Another request encodes and joins the line meanwhile: the held
        // batch has run nothing since.
        let caption_run = s.spawn(|| users[1].run(&img, &caption));
        until_decoding(&dir, 2);
        assert_eq!(model(&dir).decode_steps, before, "a step while held");
        drop(on_its_way);
        let out = caption_run.join().unwrap().unwrap();
        assert_eq!(out.ids, want[1], "the caption after the hold");
        assert!(
            out.timings.decode_batch >= 2,
            "the caption decoded alone: the held batch did not wait for it"
        );
        assert!(done_rx.try_recv().is_err(), "the long answer ended first");
        let long_out = finish(&done_rx);
        assert_eq!(long_out.ids, want[0], "the long answer after the hold");
    });

    // With a request on its way for good (the guard lives as long as each
    // scope, so a failed assertion releases the threads it holds): the
    // default bound (2) ends the caption's hold, a cancel and a deadline
    // end the patient request's. Each answer is waited for with a timeout:
    // a hold that nothing ended would keep it for hours.
    let answer = |rx: &mpsc::Receiver<Result<Output, EngineError>>| {
        rx.recv_timeout(Duration::from_secs(600))
            .expect("the hold ended")
    };
    let (patient, bounded, img, caption) = (&users[0], &users[1], &img, &caption);
    let cancel = &Interrupt::new();
    std::thread::scope(|s| {
        let _on_its_way = bounded.arriving();
        let (tx, rx) = mpsc::channel();
        let done = tx.clone();
        s.spawn(move || done.send(bounded.run(img, caption)).unwrap());
        assert_eq!(
            answer(&rx).unwrap().ids,
            want[1],
            "the caption held within its bound"
        );

        let done = tx.clone();
        s.spawn(move || {
            done.send(patient.run_with(img, &long(1000), cancel))
                .unwrap()
        });
        until_decoding(&dir, 1);
        cancel.cancel();
        common::assert_interrupted(&answer(&rx), Interruption::Cancelled);

        let late = Interrupt::with_deadline(Instant::now() + Duration::from_millis(300));
        s.spawn(move || tx.send(patient.run_with(img, &long(1000), &late)).unwrap());
        common::assert_interrupted(&answer(&rx), Interruption::DeadlineExceeded);
    });
    idle_decode_steps(&dir);
}
