#!/usr/bin/env python3
"""Per-buffer requests from Python with stock PyGObject (Debian's python3-gi).

    GST_PLUGIN_PATH=target/debug /usr/bin/python3 gst-florence/tests/support/request_fields.py MODEL_DIR

Builds `appsrc ! florencecaption mode=every-frame ! appsink`, gives buffers
their own requests through the element's `add-request` action signal (the
structure a custom meta hands to Python is a copy, so filling it does
nothing), and checks that every field arrived: the result meta echoes what was
asked in its `request` field. Exits 1 naming the first field that did not
arrive.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, GObject, Gst  # noqa: E402

W, H = 64, 48


def main() -> int:
    Gst.init(None)
    pipeline = Gst.parse_launch(
        f"appsrc name=src format=time caps=video/x-raw,format=RGB,width={W},height={H},framerate=10/1 ! "
        f'florencecaption name=f mode=every-frame threads=1 model-dir="{sys.argv[1]}" ! '
        "appsink name=sink sync=false"
    )
    src, element, sink = (pipeline.get_by_name(n) for n in ("src", "f", "sink"))
    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        print("cannot start the pipeline", file=sys.stderr)
        return 1
    frame = [0]

    def ask(request: Gst.Structure) -> Gst.Structure:
        """Pushes one frame with `request`, returns its result meta's structure."""
        buf = Gst.Buffer.new_wrapped(bytes(range(256)) * (W * H * 3 // 256))
        buf = element.emit("add-request", buf, request)
        buf.pts = frame[0] * Gst.SECOND // 10
        buf.duration = Gst.SECOND // 10
        frame[0] += 1
        src.emit("push-buffer", buf)
        sample = sink.emit("pull-sample")
        meta = sample.get_buffer().get_custom_meta("FlorenceCaptionMeta")
        if meta is None:
            raise AssertionError(f"no result meta for {request.to_string()}")
        return meta.get_structure()

    failures = []

    def expect(what, got, want):
        if got != want:
            failures.append(f"{what}: got {got!r}, want {want!r}")

    # Numbers as Python gives them: int (G_TYPE_INT) for counts and even the
    # temperature; a 64-bit deadline as GObject.Value(TYPE_INT64).
    r = Gst.Structure.new_empty("FlorenceRequestMeta")
    r.set_value("id", "all-fields")
    r.set_value("task", "caption")
    r.set_value("max-new-tokens", 2)
    r.set_value("min-new-tokens", 2)
    r.set_value("num-beams", 2)
    r.set_value("temperature", 1)
    r.set_value("seed", 7)
    r.set_value("deadline-us", GObject.Value(GObject.TYPE_INT64, GLib.get_monotonic_time() + 60_000_000))
    s = ask(r)
    expect("error", s.get_value("error"), None)
    expect("request-id", s.get_string("request-id"), "all-fields")
    expect("task", s.get_string("task"), "<CAPTION>")
    expect("token-count", s.get_value("token-count"), 2)
    asked = s.get_value("request")
    for field, want in [("max-new-tokens", 2), ("min-new-tokens", 2), ("num-beams", 2), ("temperature", 1.0), ("seed", 7)]:
        expect(field, asked.get_value(field), want)

    # text, and a region as gst_structure_from_string reads it (ints).
    s = ask(Gst.Structure.new_from_string("FlorenceRequestMeta, id=text, task=caption_to_phrase_grounding, text=\"a square\""))
    expect("text", s.get_value("request").get_string("text"), "a square")
    s = ask(Gst.Structure.new_from_string("FlorenceRequestMeta, id=region, task=region_to_category, region=<4, 6, 40, 30>"))
    expect("error", s.get_value("error"), None)
    expect("region", s.get_value("request").get_string("region"), "4,6,40,30")
    s = ask(Gst.Structure.new_from_string("FlorenceRequestMeta, id=region-text, task=region_to_category, region=\"4,6,40,30\""))
    expect("region (text)", s.get_value("request").get_string("region"), "4,6,40,30")

    # A deadline as a plain float (a Python int this big does not fit G_TYPE_INT),
    # already passed: the request times out.
    r = Gst.Structure.new_empty("FlorenceRequestMeta")
    r.set_value("id", "late")
    r.set_value("deadline-us", float(GLib.get_monotonic_time() - 1_000_000))
    s = ask(r)
    expect("deadline-us passed", s.get_string("error-kind"), "timed-out")

    # Malformed requests are refused, never run with the properties instead.
    for bad, field in [
        ('max-new-tokens=(string)two', "max-new-tokens"),
        ("max_new_tokens=2", "max_new_tokens"),
        ("num-beams=-1", "num-beams"),
        ("temperature=(string)hot", "temperature"),
        ("region=<1, 2, 3>", "region"),
        ("task=painting", "painting"),
    ]:
        s = ask(Gst.Structure.new_from_string(f"FlorenceRequestMeta, id=bad, {bad}"))
        expect(f"{bad}: error-kind", s.get_string("error-kind"), "invalid-request")
        if field not in (s.get_string("error") or ""):
            failures.append(f"{bad}: the error does not name {field}: {s.get_string('error')!r}")

    src.emit("end-of-stream")
    pipeline.set_state(Gst.State.NULL)
    for f in failures:
        print(f, file=sys.stderr)
    print(f"{frame[0]} requests, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
