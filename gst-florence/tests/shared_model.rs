//! One loaded model per process and key: florencecaption instances on the
//! same model share it (real pipelines, the tiny model). Each test uses its
//! own linked copy of the model directory, so the tests of this binary,
//! which run at once in one process, never share one another's models.

mod common;

use common::scene;

use std::path::Path;
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gstflorence::engine::preprocess::RgbImage;
use gstflorence::engine::registry;
use gstflorence::engine::task::Task;
use gstflorence::engine::{Florence, Request, SessionOptions};
use gstflorence::florencecaption::{META_NAME, MODEL_MESSAGE_NAME as MODEL_MESSAGE};

use common::{child, init_element as init, scratch::Scratch};

/// `img` with its colours changed: another frame of the same size.
fn variant(img: &RgbImage, k: u8) -> RgbImage {
    let data = img.data.iter().map(|p| p.wrapping_add(k * 37)).collect();
    RgbImage::from_rgb(img.width, img.height, data).unwrap()
}

fn caps(img: &RgbImage) -> String {
    format!(
        "video/x-raw,format=RGB,width={},height={},framerate=30/1",
        img.width, img.height
    )
}

use common::{meta_field as field, request_buffer as buffer};

/// The engine alone (its own model, not the registry's) on one thread.
fn alone(dir: &Path, image_size: Option<u32>) -> Florence {
    Florence::load(
        dir,
        SessionOptions {
            intra_threads: 1,
            image_size,
            ..SessionOptions::default()
        },
    )
    .unwrap()
}

/// The result JSON the engine alone gives for `task` on `img`.
fn expected(engine: &Florence, img: &RgbImage, task: Task) -> String {
    serde_json::to_string(&engine.run(img, &Request::new(task)).unwrap().result).unwrap()
}

/// An every-frame instance on `dir` in a harness, loaded (one frame through).
fn harness(dir: &Path, props: &[(&str, &str)], img: &RgbImage) -> gst_check::Harness {
    let mut element = gst::ElementFactory::make("florencecaption")
        .property("model-dir", dir.display().to_string())
        .property_from_str("mode", "every-frame")
        .property("threads", 1u32);
    for (name, value) in props {
        element = element.property_from_str(name, value);
    }
    let mut h =
        gst_check::Harness::with_element(&element.build().unwrap(), Some("sink"), Some("src"));
    h.set_src_caps_str(&caps(img));
    h.push(buffer(img, &[])).unwrap();
    assert!(field(&h.pull().unwrap(), "result").is_some());
    h
}

/// The registry's loaded models on `dir`: (id, users).
fn loaded_on(dir: &Path) -> Vec<(u64, usize)> {
    registry::loaded()
        .into_iter()
        .filter(|m| m.dir == dir)
        .map(|m| (m.id, m.users))
        .collect()
}

#[test]
fn two_instances_behind_a_tee_share_one_model_and_each_gives_its_results_alone() {
    init();
    let scratch = Scratch::new("shared-tee");
    let dir = scratch.model("m");
    let img = scene();
    let frames: Vec<RgbImage> = (0..3).map(|k| variant(&img, k)).collect();
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time caps=\"{}\" ! tee name=t \
         t. ! queue ! florencecaption name=a model-dir={d} mode=every-frame threads=1 task=caption \
            ! appsink name=sa sync=false \
         t. ! queue ! florencecaption name=b model-dir={d} mode=every-frame threads=1 task=od \
            num-beams=3 ! appsink name=sb sync=false",
        caps(&img),
        d = dir.display()
    ))
    .unwrap();
    let src: gst_app::AppSrc = child(&pipeline, "src");
    let sinks: [gst_app::AppSink; 2] = [child(&pipeline, "sa"), child(&pipeline, "sb")];
    pipeline.set_state(gst::State::Playing).unwrap();
    for (i, f) in frames.iter().enumerate() {
        let mut buf = buffer(f, &[]);
        buf.get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(33 * i as u64));
        src.push_buffer(buf).unwrap();
    }
    src.end_of_stream().unwrap();
    let mut cached: Vec<Vec<bool>> = Vec::new();
    let got: Vec<Vec<String>> = sinks
        .iter()
        .map(|s| {
            let mut vision_cached = Vec::new();
            let results = (0..frames.len())
                .map(|_| {
                    let sample = s.pull_sample().expect("a result per frame");
                    let buf = sample.buffer().unwrap();
                    let meta = gst::meta::CustomMeta::from_buffer(buf, META_NAME).unwrap();
                    vision_cached.push(meta.structure().get::<bool>("vision-cached").unwrap());
                    // Alone, or beside the other instance's request.
                    let batch = meta.structure().get::<u32>("decode-batch").unwrap();
                    assert!((1..=2).contains(&batch), "decode-batch {batch}");
                    field(buf, "result").expect("a result")
                })
                .collect();
            cached.push(vision_cached);
            results
        })
        .collect();
    // Each frame went through the vision encoder once: whichever instance
    // came second took the first one's features.
    for (i, (a, b)) in cached[0].iter().zip(&cached[1]).enumerate() {
        assert!(a != b, "frame {i}: vision-cached {a} and {b}");
    }

    // One model, loaded by one instance and shared by the other; the
    // registry says so too.
    let bus = pipeline.bus().unwrap();
    let mut announced = Vec::new();
    while let Some(m) = bus.pop_filtered(&[gst::MessageType::Element]) {
        let Some(s) = m.structure().filter(|s| s.name() == MODEL_MESSAGE) else {
            continue;
        };
        assert_eq!(
            s.get::<String>("model-dir").unwrap(),
            dir.display().to_string()
        );
        announced.push((
            s.get::<u64>("model-id").unwrap(),
            s.get::<u32>("users").unwrap(),
            s.get::<bool>("loaded").unwrap(),
        ));
    }
    announced.sort_by_key(|a| a.1);
    assert_eq!(announced.len(), 2, "{announced:?}");
    let id = announced[0].0;
    assert_eq!(announced, [(id, 1, true), (id, 2, false)]);
    assert_eq!(loaded_on(&dir), [(id, 2)]);

    // Token for token what each request gives on a model of its own.
    let engine = alone(&dir, None);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(
            got[0][i],
            expected(&engine, f, Task::Caption),
            "frame {i} a"
        );
        let mut od = Request::new(Task::Od);
        od.options.num_beams = Some(3);
        let want = serde_json::to_string(&engine.run(f, &od).unwrap().result).unwrap();
        assert_eq!(got[1][i], want, "frame {i} b");
    }
    pipeline.set_state(gst::State::Null).unwrap();
    // The last user gone, the model goes.
    assert!(loaded_on(&dir).is_empty(), "{:?}", loaded_on(&dir));
}

#[test]
fn another_image_size_is_another_model() {
    init();
    let scratch = Scratch::new("shared-size");
    let dir = scratch.model("m");
    let img = scene();
    let h384 = harness(&dir, &[], &img);
    let h768 = harness(&dir, &[("image-size", "768")], &img);
    let mut models = loaded_on(&dir);
    models.sort();
    assert_eq!(models.len(), 2, "{models:?}");
    assert!(models.iter().all(|m| m.1 == 1), "{models:?}");
    // A third instance joins the one with its size.
    let h384b = harness(&dir, &[], &img);
    let mut users: Vec<usize> = loaded_on(&dir).iter().map(|m| m.1).collect();
    users.sort();
    assert_eq!(users, [1, 2]);
    drop((h384, h768, h384b));
}

#[test]
fn an_instance_moved_to_another_model_or_stopped_leaves_the_other_running() {
    init();
    let scratch = Scratch::new("shared-move");
    let (one, two) = (scratch.model("one"), scratch.model("two"));
    let img = scene();
    let engine = alone(&one, None);
    let want = expected(&engine, &img, Task::Caption);
    let mut a = harness(&one, &[], &img);
    let b = harness(&one, &[], &img);
    let [(id, 2)] = loaded_on(&one)[..] else {
        panic!("not one shared model: {:?}", loaded_on(&one));
    };

    // b moves to another model directory: a keeps its model and goes on.
    let be = b.element().unwrap();
    be.set_state(gst::State::Null).unwrap();
    be.set_property("model-dir", two.display().to_string());
    be.set_state(gst::State::Playing).unwrap();
    assert_eq!(loaded_on(&one), [(id, 1)]);
    assert_eq!(loaded_on(&two).len(), 1);
    a.push(buffer(&variant(&img, 0), &[])).unwrap();
    assert_eq!(field(&a.pull().unwrap(), "result").unwrap(), want);

    // b back on a's model, then stopped: a keeps the model.
    be.set_state(gst::State::Null).unwrap();
    be.set_property("model-dir", one.display().to_string());
    be.set_state(gst::State::Playing).unwrap();
    assert_eq!(loaded_on(&one), [(id, 2)]);
    assert!(loaded_on(&two).is_empty(), "{:?}", loaded_on(&two));
    be.set_state(gst::State::Null).unwrap();
    assert_eq!(loaded_on(&one), [(id, 1)]);
    a.push(buffer(&img, &[])).unwrap();
    assert_eq!(field(&a.pull().unwrap(), "result").unwrap(), want);
    drop(a);
    assert!(loaded_on(&one).is_empty(), "{:?}", loaded_on(&one));
}

#[test]
fn a_cancel_or_deadline_on_one_instance_does_not_disturb_the_other() {
    init();
    let scratch = Scratch::new("shared-cancel");
    let dir = scratch.model("m");
    let img = scene();
    let engine = alone(&dir, None);
    let frames: Vec<RgbImage> = (0..4).map(|k| variant(&img, k)).collect();
    let want: Vec<String> = frames
        .iter()
        .map(|f| expected(&engine, f, Task::Caption))
        .collect();

    // a: long requests (1000 tokens, 8 beams: seconds on one thread),
    // one stopped at its deadline, one cancelled by id.
    let a_element = gst::ElementFactory::make("florencecaption")
        .property("model-dir", dir.display().to_string())
        .property_from_str("mode", "every-frame")
        .property("threads", 1u32)
        .build()
        .unwrap();
    let mut a = gst_check::Harness::with_element(&a_element, Some("sink"), Some("src"));
    a.set_src_caps_str(&caps(&img));
    // b: short captions on the same model meanwhile.
    let b = harness(&dir, &[], &img);
    let [(_, 2)] = loaded_on(&dir)[..] else {
        panic!("not one shared model: {:?}", loaded_on(&dir));
    };
    let long = |id: &str, extra: Vec<(&'static str, glib::SendValue)>| {
        let mut fields = vec![
            ("id", id.to_send_value()),
            ("max-new-tokens", 1000u32.to_send_value()),
            ("min-new-tokens", 1000u32.to_send_value()),
            ("num-beams", 8u32.to_send_value()),
        ];
        fields.extend(extra);
        buffer(&img, &fields)
    };

    // b's captions run on another thread while a's long requests run; b
    // sends until a's last request has ended, so they overlap, and at least
    // twice (how many fit beside a's requests depends on the machine).
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let b_thread = std::thread::spawn(move || {
        let mut b = b;
        let mut results = Vec::new();
        let mut a_done = false;
        loop {
            let k = results.len() % frames.len();
            b.push(buffer(&frames[k], &[])).unwrap();
            let out = b.pull().unwrap();
            results.push((k, field(&out, "result"), field(&out, "error")));
            a_done |= done_rx.try_recv().is_ok();
            if a_done && results.len() >= 2 {
                return (results, want);
            }
        }
    });

    let deadline = glib::monotonic_time() + 400_000;
    a.push(long(
        "soon",
        vec![("deadline-us", deadline.to_send_value())],
    ))
    .unwrap();
    let out = a.pull().unwrap();
    assert_eq!(field(&out, "error-kind").as_deref(), Some("timed-out"));

    let e = a_element.clone();
    let canceller = std::thread::spawn(move || {
        let start = Instant::now();
        while !e.emit_by_name::<bool>("cancel", &[&"long"]) {
            assert!(start.elapsed() < Duration::from_secs(10), "never running");
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    a.push(long("long", vec![])).unwrap();
    canceller.join().unwrap();
    let out = a.pull().unwrap();
    assert_eq!(field(&out, "request-id").as_deref(), Some("long"));
    assert_eq!(field(&out, "error-kind").as_deref(), Some("cancelled"));
    done_tx.send(()).unwrap();

    let (results, want) = b_thread.join().unwrap();
    for (k, result, error) in results {
        assert_eq!(error, None);
        assert_eq!(result.as_deref(), Some(want[k].as_str()), "frame {k}");
    }
    // a carries on too.
    a.push(buffer(&img, &[])).unwrap();
    assert_eq!(
        field(&a.pull().unwrap(), "result").unwrap(),
        expected(&engine, &img, Task::Caption)
    );
}
