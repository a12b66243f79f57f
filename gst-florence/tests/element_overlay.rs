//! florenceoverlay: the newest florencecaption result drawn on the video,
//! blended into frames or attached as an overlay composition meta for a
//! downstream that renders those, and kept on buffers until the next result.

mod common;

use common::{init_element as init, root, tiny_model_arg as model_dir};

use gst::prelude::*;
use gstflorence::engine::postprocess::TaskResult;
use gstflorence::protocol::{CaptionResult, META_NAME, RequestParams};

const WIDTH: u32 = 640;
const HEIGHT: u32 = 480;

/// One RGBA frame of the scene fixture, as it leaves pngdec, and the same
/// frame after `florencecaption task=od ! florenceoverlay`; `answer` makes
/// the drawn branch's sink say it renders overlay metas.
fn scene_through_overlay(answer: bool) -> (gst::Buffer, gst::Buffer) {
    init();
    let png = root().join("tests/fixtures/images/scene_640x480.png");
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! pngdec ! videoconvert ! video/x-raw,format=RGBA ! tee name=t \
         t. ! queue ! appsink name=plain sync=false \
         t. ! queue ! florencecaption mode=every-frame model-dir={} threads=1 num-beams=1 task=od \
         ! florenceoverlay ! appsink name=drawn sync=false",
        png.display(),
        model_dir()
    ))
    .unwrap();
    let drawn: gst_app::AppSink = common::child(&pipeline, "drawn");
    let plain: gst_app::AppSink = common::child(&pipeline, "plain");
    if answer {
        drawn.static_pad("sink").unwrap().add_probe(
            gst::PadProbeType::QUERY_DOWNSTREAM,
            |_, info| {
                if let Some(gst::QueryViewMut::Allocation(q)) =
                    info.query_mut().map(|q| q.view_mut())
                {
                    // Answered as a sink that composes overlays itself does.
                    q.add_allocation_meta::<gst_video::VideoOverlayCompositionMeta>(None);
                    return gst::PadProbeReturn::Handled;
                }
                gst::PadProbeReturn::Ok
            },
        );
    }
    pipeline.set_state(gst::State::Playing).unwrap();
    let take = |sink: &gst_app::AppSink| sink.pull_sample().unwrap().buffer_owned().unwrap();
    let (p, d) = (take(&plain), take(&drawn));
    pipeline.set_state(gst::State::Null).unwrap();
    (p, d)
}

fn rgba(buf: &gst::BufferRef, x: u32, y: u32) -> [u8; 4] {
    let map = buf.map_readable().unwrap();
    let i = ((y * WIDTH + x) * 4) as usize;
    map[i..i + 4].try_into().unwrap()
}

/// The first box of the result on `buf`, rounded to pixels.
fn first_box(buf: &gst::BufferRef) -> [u32; 4] {
    let meta = gst::meta::CustomMeta::from_buffer(buf, META_NAME).expect("the result meta");
    let result = CaptionResult::decode(meta.structure()).unwrap();
    let TaskResult::Boxes { bboxes, .. } = result.result else {
        panic!("not boxes: {:?}", result.result);
    };
    bboxes[0].map(|v| v.round() as u32)
}

/// The box's outline is drawn on `drawn` (one colour, not the picture's),
/// and the picture is untouched off it.
fn assert_outlined(plain: &gst::BufferRef, drawn: &gst::BufferRef, [x1, y1, x2, y2]: [u32; 4]) {
    let (mid_x, mid_y) = ((x1 + x2) / 2, (y1 + y2) / 2);
    let colour = rgba(drawn, x1, mid_y);
    for (x, y) in [(x1, mid_y), (x2, mid_y), (mid_x, y2)] {
        assert_ne!(rgba(drawn, x, y), rgba(plain, x, y), "edge ({x}, {y})");
        assert_eq!(rgba(drawn, x, y), colour, "edge ({x}, {y})");
    }
    for (x, y) in [(mid_x, mid_y), (WIDTH - 1, HEIGHT - 1)] {
        assert_eq!(rgba(drawn, x, y), rgba(plain, x, y), "off ({x}, {y})");
    }
}

#[test]
fn detections_are_blended_into_the_frame_at_their_boxes() {
    let (plain, drawn) = scene_through_overlay(false);
    assert!(
        drawn
            .meta::<gst_video::VideoOverlayCompositionMeta>()
            .is_none(),
        "appsink renders no overlay metas: the drawing is in the pixels"
    );
    assert_outlined(&plain, &drawn, first_box(&drawn));
}

#[test]
fn a_downstream_that_renders_overlays_gets_the_meta_and_the_frame_untouched() {
    let (plain, drawn) = scene_through_overlay(true);
    let composition = drawn
        .meta::<gst_video::VideoOverlayCompositionMeta>()
        .expect("an overlay composition meta")
        .overlay_owned();
    assert_eq!(
        drawn.map_readable().unwrap().as_slice(),
        plain.map_readable().unwrap().as_slice(),
        "the frame itself is not drawn on"
    );
    // Rendered as such a sink would: the same drawing as the blended one.
    let mut rendered = drawn.copy_deep().unwrap();
    {
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgba, WIDTH, HEIGHT)
            .build()
            .unwrap();
        let buf = rendered.get_mut().unwrap();
        let mut frame = gst_video::VideoFrameRef::from_buffer_ref_writable(buf, &info).unwrap();
        composition.blend(&mut frame).unwrap();
    }
    assert_outlined(&plain, &rendered, first_box(&drawn));
}

/// A frame of `w` x `h` RGBA zeros at `pts` frames, with `result` as the
/// element's meta when given.
fn frame(i: u64, result: Option<&CaptionResult>) -> gst::Buffer {
    let mut buf = gst::Buffer::from_mut_slice(vec![0u8; 64 * 48 * 4]);
    {
        let b = buf.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_mseconds(40 * i));
        if let Some(r) = result {
            let mut meta = gst::meta::CustomMeta::add(b, META_NAME).unwrap();
            let s = r.encode(META_NAME);
            for (name, value) in s.iter() {
                meta.mut_structure().set_value(name, value.clone());
            }
        }
    }
    buf
}

#[test]
fn the_last_result_stays_drawn_until_the_next_one() {
    init();
    // Registers the result meta (the element does when it is created).
    gst::ElementFactory::make("florencecaption")
        .build()
        .unwrap();
    let pipeline = gst::parse::launch(
        "appsrc name=in format=time caps=video/x-raw,format=RGBA,width=64,height=48,framerate=25/1 \
         ! florenceoverlay ! appsink name=out sync=false",
    )
    .unwrap();
    let src: gst_app::AppSrc = common::child(&pipeline, "in");
    let sink: gst_app::AppSink = common::child(&pipeline, "out");
    pipeline.set_state(gst::State::Playing).unwrap();
    let result = |bbox: [f64; 4]| CaptionResult {
        task: "<OD>".into(),
        text: "car".into(),
        result: TaskResult::Boxes {
            bboxes: vec![bbox],
            labels: vec![String::new()],
        },
        inference_ms: 1.0,
        queue_wait_ms: 0.0,
        decode_batch: 1,
        model: "m".into(),
        frame_pts: Some(0),
        fresh: true,
        age_ms: 0.0,
        token_count: 1,
        // Analysed at twice the video's size: drawn scaled to it.
        image_size: [128, 96],
        vision_cached: false,
        asked: RequestParams::default(),
        request_id: None,
        element: None,
    };
    let first = result([20.0, 20.0, 100.0, 80.0]);
    let second = result([0.0, 0.0, 40.0, 40.0]);
    for (i, r) in [None, Some(&first), None, None, Some(&second)]
        .into_iter()
        .enumerate()
    {
        src.push_buffer(frame(i as u64, r)).unwrap();
    }
    src.end_of_stream().unwrap();
    let drawn_at = |buf: &gst::BufferRef, x: u32, y: u32| {
        let map = buf.map_readable().unwrap();
        map[((y * 64 + x) * 4 + 3) as usize] > 0
            || map[((y * 64 + x) * 4) as usize..][..3] != [0, 0, 0]
    };
    let frames: Vec<gst::Buffer> = (0..5)
        .map(|_| sink.pull_sample().unwrap().buffer_owned().unwrap())
        .collect();
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(
        !drawn_at(&frames[0], 10, 25),
        "nothing before the first result"
    );
    // The first box at half its coordinates: left edge x = 10.
    for (i, f) in frames[1..4].iter().enumerate() {
        assert!(drawn_at(f, 10, 25), "frame {}: the first result", i + 1);
        assert!(!drawn_at(f, 25, 25), "frame {}: inside the box", i + 1);
    }
    // The second replaces it: its right edge x = 20; the first's left edge is gone.
    assert!(drawn_at(&frames[4], 20, 10));
    assert!(!drawn_at(&frames[4], 10, 25));
}
