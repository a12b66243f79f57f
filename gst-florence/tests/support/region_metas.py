#!/usr/bin/env python3
"""Florence-2's regions read from Python as GstVideoRegionOfInterestMeta, with
stock PyGObject (Debian's python3-gi and gir1.2-gst-plugins-base-1.0).

    GST_PLUGIN_PATH=target/debug /usr/bin/python3 gst-florence/tests/support/region_metas.py MODEL_DIR IMAGE

For every region task, runs `filesrc ! pngdec ! videoconvert ! florencecaption
mode=every-frame ! appsink` on IMAGE and reads the region metas of the output
buffer the way a pad-probe app does: GstVideo's
`buffer_get_video_region_of_interest_meta_id` for ids 0, 1, ... (PyGObject
cannot iterate a buffer's metas; the element's ids are unique on a buffer and
start at 0), the type, rectangle and `florence/region` params of each. They
are compared, region for region, with the result JSON of the buffer's
FlorenceCaptionMeta. Prints one line per task and a summary; exits 1 at the
first mismatch.
"""

import json
import sys
import warnings

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import GLib, Gst, GstVideo  # noqa: E402

# Each region task with the properties under which the tiny model finds a
# region in the scene fixture (its outputs are random-ish: some need beams or
# sampling).
TASKS = [
    ("<OD>", "task=od num-beams=1"),
    ("<DENSE_REGION_CAPTION>", "task=dense-region-caption num-beams=1"),
    ("<REGION_PROPOSAL>", "task=region-proposal num-beams=3"),
    ("<CAPTION_TO_PHRASE_GROUNDING>", 'task=caption-to-phrase-grounding prompt="a red square" num-beams=1'),
    ("<OPEN_VOCABULARY_DETECTION>", 'task=open-vocabulary-detection prompt="a red square" num-beams=1'),
    ("<OCR_WITH_REGION>", "task=ocr-with-region num-beams=1 temperature=1.0 seed=1"),
    ("<REFERRING_EXPRESSION_SEGMENTATION>", 'task=referring-expression-segmentation prompt="a red square" num-beams=1'),
    ("<REGION_TO_SEGMENTATION>", 'task=region-to-segmentation prompt="<loc_100><loc_100><loc_700><loc_800>" num-beams=1'),
]


class Mismatch(Exception):
    pass


def analyse(model_dir, image, props):
    """The output buffer of florencecaption with `props` on `image`."""
    pipeline = Gst.parse_launch(
        f'filesrc location="{image}" ! pngdec ! videoconvert ! video/x-raw,format=RGB ! '
        f'florencecaption name=det mode=every-frame threads=1 model-dir="{model_dir}" {props} ! '
        "appsink name=sink sync=false"
    )
    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        raise Mismatch(f"cannot start the pipeline with {props}")
    sample = pipeline.get_by_name("sink").emit("try-pull-sample", 60 * Gst.SECOND)
    pipeline.set_state(Gst.State.NULL)
    if sample is None:
        raise Mismatch(f"no output buffer with {props}")
    return sample.get_buffer()


def region_metas(buf):
    """The buffer's region metas by id, 0, 1, ... until one is missing."""
    metas = []
    while (m := GstVideo.buffer_get_video_region_of_interest_meta_id(buf, len(metas))) is not None:
        metas.append(m)
    return metas


def expected(result):
    """(shape, index, label, points) of each region of a result, boxes first."""
    def flat(v):
        return [x for item in v for x in flat(item)] if isinstance(v, list) else [v]

    out = []
    for shapes, labels, shape in [
        ("bboxes", "bboxes_labels" if "bboxes_labels" in result else "labels", "box"),
        ("quad_boxes", "labels", "quad"),
        ("polygons", "polygons_labels" if "polygons_labels" in result else "labels", "polygon"),
    ]:
        for i, s in enumerate(result.get(shapes, [])):
            points = flat(s)
            if points:
                label = result[labels][i] if i < len(result[labels]) else ""
                out.append((shape, i, label, points))
    return out


def doubles(array):
    """A GValueArray's doubles (`get_array` gives one; GLib deprecated the
    type, but it is what PyGObject reads a GstValueArray field as)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return [array.get_nth(i) for i in range(array.n_values)]


def check(task, buf):
    """Compares the region metas of `buf` with its result; returns their number."""
    s = buf.get_custom_meta("FlorenceCaptionMeta").get_structure()
    result = json.loads(s.get_string("result"))
    metas = region_metas(buf)
    want = expected(result)
    if len(metas) != len(want):
        raise Mismatch(f"{task}: {len(metas)} region metas for {len(want)} regions in {result}")
    for meta, (shape, index, label, points) in zip(metas, want):
        at = f"{task} {shape} {index}"
        params = meta.get_param("florence/region")
        if params is None:
            raise Mismatch(f"{at}: no florence/region params")
        got = (params.get_string("task"), params.get_string("label"), params.get_string("shape"), params.get_uint("index")[1])
        if got != (task, label, shape, index):
            raise Mismatch(f"{at}: params {params.to_string()}")
        if GLib.quark_to_string(meta.roi_type) != (label or task):
            raise Mismatch(f"{at}: roi type {GLib.quark_to_string(meta.roi_type)}")
        xs, ys = points[0::2], points[1::2]
        for got, want_px in [(meta.x, min(xs)), (meta.y, min(ys)), (meta.x + meta.w, max(xs)), (meta.y + meta.h, max(ys))]:
            if abs(got - want_px) > 0.5:
                raise Mismatch(f"{at}: rectangle {meta.x},{meta.y} {meta.w}x{meta.h} for {points}")
        if shape == "box":
            continue
        ok, fractions = params.get_array("points")
        if not ok:
            raise Mismatch(f"{at}: no points in {params.to_string()}")
        fractions = doubles(fractions)
        back = [
            (meta.x + f * meta.w) if i % 2 == 0 else (meta.y + f * meta.h) for i, f in enumerate(fractions)
        ]
        if len(back) != len(points) or any(abs(a - b) > 0.5 for a, b in zip(back, points)):
            raise Mismatch(f"{at}: outline {back} for {points}")
    return len(metas)


def main() -> int:
    Gst.init(None)
    model_dir, image = sys.argv[1], sys.argv[2]
    total = 0
    try:
        for task, props in TASKS:
            n = check(task, analyse(model_dir, image, props))
            print(json.dumps({"task": task, "regions": n}), flush=True)
            total += n
    except Mismatch as e:
        print(f"mismatch: {e}", file=sys.stderr)
        return 1
    print(f"{len(TASKS)} tasks, {total} regions, 0 mismatches")
    return 0


if __name__ == "__main__":
    sys.exit(main())
