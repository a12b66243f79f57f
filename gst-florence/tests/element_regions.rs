//! Region metas: every region task's boxes, quads and polygons leave the
//! element as `GstVideoRegionOfInterestMeta`s that agree, region for region,
//! with the result the same buffer carries in `FlorenceCaptionMeta`, and
//! scalers transform them.

mod common;

use common::scene;

use common::{init_element as init, meta_field as field, request_buffer as buffer};

use gst::glib;
use gst::prelude::*;
use gst_video::VideoRegionOfInterestMeta;
use gstflorence::engine::preprocess::RgbImage;
use serde_json::Value;

/// Every task whose result has regions, with its request fields: the text
/// or region it needs, and decoding under which the tiny model finds a
/// region in the scene (it is random-ish: some tasks need beams or sampling).
fn region_tasks() -> Vec<(&'static str, Vec<(&'static str, glib::SendValue)>)> {
    let text = |t: &str| ("text", t.to_send_value());
    let beams = |n: u32| ("num-beams", n.to_send_value());
    vec![
        ("<OD>", vec![beams(1)]),
        ("<DENSE_REGION_CAPTION>", vec![beams(1)]),
        ("<REGION_PROPOSAL>", vec![beams(3)]),
        (
            "<CAPTION_TO_PHRASE_GROUNDING>",
            vec![beams(1), text("a red square")],
        ),
        (
            "<OPEN_VOCABULARY_DETECTION>",
            vec![beams(1), text("a red square")],
        ),
        (
            "<OCR_WITH_REGION>",
            vec![
                beams(1),
                ("temperature", 1.0f64.to_send_value()),
                ("seed", 1u64.to_send_value()),
            ],
        ),
        (
            "<REFERRING_EXPRESSION_SEGMENTATION>",
            vec![beams(1), text("a red square")],
        ),
        (
            "<REGION_TO_SEGMENTATION>",
            vec![beams(1), text("<loc_100><loc_100><loc_700><loc_800>")],
        ),
    ]
}

/// One region meta as read with gstreamer-video's API.
#[derive(Debug)]
struct Roi {
    roi_type: String,
    rect: (u32, u32, u32, u32),
    id: i32,
    params: gst::Structure,
}

fn rois(buf: &gst::BufferRef) -> Vec<Roi> {
    buf.iter_meta::<VideoRegionOfInterestMeta>()
        .map(|m| {
            let params: Vec<_> = m.params().collect();
            assert_eq!(params.len(), 1, "one params structure per region");
            Roi {
                roi_type: m.roi_type().to_owned(),
                rect: m.rect(),
                id: m.id(),
                params: params[0].to_owned(),
            }
        })
        .collect()
}

/// The regions of a result as JSON: (shape, index, label, points x, y, ...),
/// boxes as their two corners, in the element's order (boxes first).
fn json_regions(result: &Value) -> Vec<(&'static str, usize, String, Vec<f64>)> {
    let nums = |v: &Value| -> Vec<f64> {
        fn flat(v: &Value, out: &mut Vec<f64>) {
            match v {
                Value::Array(a) => a.iter().for_each(|x| flat(x, out)),
                n => out.push(n.as_f64().unwrap()),
            }
        }
        let mut out = Vec::new();
        flat(v, &mut out);
        out
    };
    let list = |shapes: &str, labels: &str, shape: &'static str| {
        result[shapes]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let label = result[labels][i].as_str().unwrap_or("").to_owned();
                (shape, i, label, nums(s))
            })
            .filter(|(_, _, _, points)| !points.is_empty())
            .collect::<Vec<_>>()
    };
    let boxes_labels = if result.get("bboxes_labels").is_some() {
        "bboxes_labels"
    } else {
        "labels"
    };
    let polygons_labels = if result.get("polygons_labels").is_some() {
        "polygons_labels"
    } else {
        "labels"
    };
    let mut all = list("bboxes", boxes_labels, "box");
    all.extend(list("quad_boxes", "labels", "quad"));
    all.extend(list("polygons", polygons_labels, "polygon"));
    all
}

/// The bounds of x, y, x, y, ...
fn bounds(points: &[f64]) -> [f64; 4] {
    let xs = points.iter().step_by(2);
    let ys = points.iter().skip(1).step_by(2);
    [
        xs.clone().cloned().fold(f64::INFINITY, f64::min),
        ys.clone().cloned().fold(f64::INFINITY, f64::min),
        xs.cloned().fold(f64::NEG_INFINITY, f64::max),
        ys.cloned().fold(f64::NEG_INFINITY, f64::max),
    ]
}

fn doubles(s: &gst::StructureRef, name: &str) -> Vec<f64> {
    s.get::<gst::Array>(name)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .iter()
        .map(|v| v.get::<f64>().unwrap())
        .collect()
}

/// Checks the region metas of `buf` against the result JSON it carries, on a
/// frame scaled by (sx, sy) from the analysed one (`tolerance` pixels);
/// returns how many regions it checked.
fn check_regions(
    buf: &gst::BufferRef,
    result: &Value,
    task: &str,
    element: &str,
    (sx, sy): (f64, f64),
    tolerance: f64,
) -> usize {
    let want = json_regions(result);
    let all = rois(buf);
    let mut ids: Vec<i32> = all.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all.len(), "ids are unique on a buffer: {all:?}");
    let got: Vec<&Roi> = all
        .iter()
        .filter(|r| r.params.get::<&str>("element") == Ok(element))
        .collect();
    assert_eq!(got.len(), want.len(), "{task}: {result}\n{got:?}");
    for (n, (roi, (shape, index, label, points))) in got.iter().zip(&want).enumerate() {
        let at = format!("{task} region {n} ({shape} {index}): {roi:?} vs {points:?}");
        let p = &roi.params;
        assert_eq!(p.name(), "florence/region", "{at}");
        assert_eq!(p.get::<&str>("task"), Ok(task), "{at}");
        assert_eq!(p.get::<&str>("label"), Ok(label.as_str()), "{at}");
        assert_eq!(p.get::<&str>("element"), Ok(element), "{at}");
        assert_eq!(p.get::<&str>("shape"), Ok(*shape), "{at}");
        assert_eq!(p.get::<u32>("index"), Ok(*index as u32), "{at}");
        let expected_type = if label.is_empty() { task } else { label };
        assert_eq!(roi.roi_type, expected_type, "{at}");
        let b = bounds(points);
        let (x, y, w, h) = roi.rect;
        let (x, y, w, h) = (f64::from(x), f64::from(y), f64::from(w), f64::from(h));
        for (got, want) in [
            (x, b[0] * sx),
            (y, b[1] * sy),
            (x + w, b[2] * sx),
            (y + h, b[3] * sy),
        ] {
            assert!((got - want).abs() <= tolerance, "{at}: {got} vs {want}");
        }
        if *shape == "box" {
            assert!(!p.has_field("points"), "{at}");
            continue;
        }
        // The outline, back in pixels of the frame from fractions of the rectangle.
        let fractions = doubles(p, "points");
        assert_eq!(fractions.len(), points.len(), "{at}");
        let counts: Vec<u32> = p
            .get::<gst::Array>("point-counts")
            .unwrap()
            .iter()
            .map(|v| v.get::<u32>().unwrap())
            .collect();
        assert_eq!(
            counts.iter().sum::<u32>() as usize * 2,
            points.len(),
            "{at}"
        );
        for (i, (f, want)) in fractions.iter().zip(points).enumerate() {
            let (origin, size, s) = if i % 2 == 0 { (x, w, sx) } else { (y, h, sy) };
            let got = origin + f * size;
            assert!(
                (got - want * s).abs() <= tolerance,
                "{at}: point {i}: {got} vs {}",
                want * s
            );
        }
    }
    want.len()
}

/// RGB caps for frames of `img`.
fn caps(img: &RgbImage) -> String {
    format!(
        "video/x-raw,format=RGB,width={},height={},framerate=30/1",
        img.width, img.height
    )
}

/// florencecaption `det` in every-frame mode, for frames of `img`'s size.
fn every_frame_harness(img: &RgbImage) -> gst_check::Harness {
    let mut h = gst_check::Harness::new_parse(&format!(
        "florencecaption name=det model-dir={} mode=every-frame threads=1",
        common::tiny_model_arg()
    ));
    h.set_src_caps_str(&caps(img));
    h
}

#[test]
fn every_region_task_gives_region_metas_matching_its_result() {
    init();
    let img = scene();
    let mut h = every_frame_harness(&img);
    let mut total = 0;
    for (token, mut fields) in region_tasks() {
        fields.push(("task", token.to_send_value()));
        h.push(buffer(&img, &fields)).unwrap();
        let out = h.pull().unwrap();
        assert_eq!(field(&out, "error"), None, "{token}");
        assert_eq!(field(&out, "task").as_deref(), Some(token));
        let result: Value = serde_json::from_str(&field(&out, "result").unwrap()).unwrap();
        let n = check_regions(&out, &result, token, "det", (1.0, 1.0), 0.5);
        eprintln!("{token}: {n} regions");
        assert!(n > 0, "{token}: the tiny model found no region: {result}");
        total += n;
    }
    eprintln!("{total} regions checked");

    // A text result has no region.
    h.push(buffer(&img, &[("task", "caption".to_send_value())]))
        .unwrap();
    assert!(rois(&h.pull().unwrap()).is_empty());
}

#[test]
fn live_mode_buffers_carry_the_latest_results_regions() {
    init();
    let img = scene();
    let element = gst::ElementFactory::make("florencecaption")
        .name("live")
        .property("model-dir", common::tiny_model_arg())
        .property("threads", 1u32)
        .property_from_str("task", "od")
        .property("num-beams", 1u32)
        .build()
        .unwrap();
    // The worker posts each result after making it the latest: its message
    // says the next buffer carries it.
    let (posted_tx, posted_rx) = std::sync::mpsc::channel::<()>();
    common::on_each_result(&element, move || {
        let _ = posted_tx.send(());
    });
    let mut h = gst_check::Harness::with_element(&element, Some("sink"), Some("src"));
    h.set_src_caps_str(&caps(&img));
    let first = h.push_and_pull(buffer(&img, &[])).unwrap();
    assert!(rois(&first).is_empty(), "no result yet");
    posted_rx.recv().unwrap();
    for _ in 0..2 {
        let out = h.push_and_pull(buffer(&img, &[])).unwrap();
        let result: Value = serde_json::from_str(&field(&out, "result").unwrap()).unwrap();
        let n = check_regions(&out, &result, "<OD>", "live", (1.0, 1.0), 0.5);
        assert!(n > 0, "{result}");
    }
}

#[test]
fn videoscale_scales_the_region_metas() {
    init();
    // Two instances on one buffer: regions of both, each with its params.
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=1 pattern=smpte ! video/x-raw,format=RGB,width=320,height=240 ! \
         florencecaption name=f mode=every-frame model-dir={model} threads=1 num-beams=1 task=od ! \
         florencecaption name=g mode=every-frame model-dir={model} threads=1 num-beams=1 \
           task=region-to-segmentation region=40,30,280,200 ! \
         videoscale ! video/x-raw,width=640,height=120 ! appsink name=out sync=false",
        model = common::tiny_model_arg()
    ))
    .unwrap();
    let sink: gst_app::AppSink = common::child(&pipeline, "out");
    pipeline.set_state(gst::State::Playing).unwrap();
    let sample = sink.pull_sample().expect("a frame");
    let bus = pipeline.bus().unwrap();
    // The bus messages have the analysed frame's coordinates.
    let mut analysed = std::collections::BTreeMap::new();
    while analysed.len() < 2 {
        let msg = bus
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(60),
                &[gst::MessageType::Element],
            )
            .expect("a florence-caption message per instance");
        if let Some(s) = msg
            .structure()
            .filter(|s| s.name() == gstflorence::florencecaption::MESSAGE_NAME)
        {
            let result: Value = serde_json::from_str(&s.get::<String>("result").unwrap()).unwrap();
            analysed.insert(s.get::<String>("element").unwrap(), result);
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    // GStreamer scales x and w separately in integers: a pixel either way.
    for (element, task) in [("f", "<OD>"), ("g", "<REGION_TO_SEGMENTATION>")] {
        let result = &analysed[element];
        let n = check_regions(
            sample.buffer().unwrap(),
            result,
            task,
            element,
            (2.0, 0.5),
            1.0,
        );
        assert!(n > 0, "{element}: the tiny model found no region: {result}");
    }
}

/// The analytics library where the running GStreamer has it; `None` (with
/// the reason printed) on GStreamer before 1.24, where the element attaches
/// region metas only. From 1.24 on the library must be usable.
fn analytics_or_skip(test: &str) -> Option<&'static gstflorence::analytics::Analytics> {
    match gstflorence::analytics::analytics() {
        Ok(a) => Some(a),
        Err(reason) => {
            let (major, minor, ..) = gst::version();
            assert!(
                (major, minor) < gstflorence::analytics::SINCE,
                "GStreamer {}: {reason}",
                gst::version_string()
            );
            assert!(reason.contains("older than 1.24"), "{reason}");
            println!("{test}: skipped: {reason}");
            None
        }
    }
}

#[test]
fn analytics_meta_has_every_region_as_an_object_detection() {
    init();
    let Some(analytics) =
        analytics_or_skip("analytics_meta_has_every_region_as_an_object_detection")
    else {
        return;
    };
    let img = scene();
    let mut h = every_frame_harness(&img);
    for (token, mut fields) in region_tasks() {
        fields.push(("task", token.to_send_value()));
        h.push(buffer(&img, &fields)).unwrap();
        let out = h.pull().unwrap();
        let result: Value = serde_json::from_str(&field(&out, "result").unwrap()).unwrap();
        // The region metas are the result's (checked as above) ...
        let n = check_regions(&out, &result, token, "det", (1.0, 1.0), 0.5);
        assert!(n > 0, "{token}: {result}");
        // ... and the object detections are the region metas.
        let detections = analytics.detections(&out);
        let regions: Vec<_> = rois(&out)
            .into_iter()
            .map(|r| {
                let (x, y, w, h) = r.rect;
                (r.roi_type, (x as i32, y as i32, w as i32, h as i32))
            })
            .collect();
        let found: Vec<_> = detections
            .iter()
            .map(|d| (d.label.clone(), d.rect))
            .collect();
        assert_eq!(found, regions, "{token}");
        assert!(
            detections.iter().all(|d| d.confidence == 1.0),
            "{detections:?}"
        );
    }
}

#[test]
fn objectdetectionoverlay_draws_the_boxes() {
    init();
    if analytics_or_skip("objectdetectionoverlay_draws_the_boxes").is_none() {
        return;
    }
    // The same frame with and without the stock overlay after the element.
    let frame = |overlay: &str| {
        let pipeline = gst::parse::launch(&format!(
            "videotestsrc num-buffers=1 pattern=smpte ! video/x-raw,format=RGB,width=320,height=240 ! \
             florencecaption mode=every-frame model-dir={} threads=1 num-beams=1 task=od ! \
             videoconvert ! {overlay} videoconvert ! video/x-raw,format=RGB ! appsink name=out sync=false",
            common::tiny_model_arg()
        ))
        .unwrap();
        let sink: gst_app::AppSink = common::child(&pipeline, "out");
        pipeline.set_state(gst::State::Playing).unwrap();
        let sample = sink.pull_sample().expect("a frame");
        pipeline.set_state(gst::State::Null).unwrap();
        let buf = sample.buffer_owned().unwrap();
        let rect = rois(&buf).first().expect("a detected box").rect;
        let pixels = buf.map_readable().unwrap().to_vec();
        (rect, pixels)
    };
    let (rect, plain) = frame("");
    let (same, drawn) = frame("objectdetectionoverlay ! ");
    assert_eq!(rect, same);
    let (x, y, w, h) = rect;
    let stride = 320 * 3;
    let changed = |px: u32, py: u32| {
        let at = py as usize * stride + px as usize * 3;
        plain[at..at + 3] != drawn[at..at + 3]
    };
    // The outline: most pixels of the box's left and bottom edges changed.
    let left = (y..y + h).filter(|&py| changed(x, py)).count();
    let bottom = (x..x + w)
        .filter(|&px| changed(px, (y + h).min(239)))
        .count();
    assert!(
        left * 2 > h as usize && bottom * 2 > w as usize,
        "box {rect:?}: {left} of {h} left-edge and {bottom} of {w} bottom-edge pixels drawn"
    );
}

#[test]
fn ids_count_on_from_an_upstream_detectors_regions() {
    init();
    let img = scene();
    let mut h = every_frame_harness(&img);
    let mut buf = buffer(
        &img,
        &[
            ("task", "<OD>".to_send_value()),
            ("num-beams", 1u32.to_send_value()),
        ],
    );
    {
        let mut face = VideoRegionOfInterestMeta::add(buf.get_mut().unwrap(), "face", (1, 2, 3, 4));
        face.set_id(7);
    }
    h.push(buf).unwrap();
    let out = h.pull().unwrap();
    let all: Vec<(String, i32)> = out
        .iter_meta::<VideoRegionOfInterestMeta>()
        .map(|m| (m.roi_type().to_owned(), m.id()))
        .collect();
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[0], ("face".to_owned(), 7));
    assert_eq!(all[1].1, 8, "{all:?}");
}
