#!/usr/bin/env python3
"""Read Florence-2 results in a pad probe, the way hailo-rpi5 style apps do.

    GST_PLUGIN_PATH=target/release python3 pipelines/caption_probe.py \
        --model-dir tests/fixtures/tiny-florence2

Builds `videotestsrc ! florencecaption ! fakesink`, and a probe on the
element's src pad prints each buffer's FlorenceCaptionMeta (a GstCustomMeta, so
no header or typelib of this project is needed). In live mode the last result
can come after the last buffer (the element delivers the analysis in flight at
EOS): the `florence-caption` bus message carries it, with the same fields.
"""

import argparse
import json
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


# The pad probe runs on the streaming thread and the bus watch on the main loop's:
# a frame's meta and its message can arrive at the same time.
SEEN_LOCK = threading.Lock()


def report(s, via, seen):
    """Prints a result (meta or message structure) the first time its frame is seen."""
    frame_pts = s.get_value("frame-pts")
    with SEEN_LOCK:
        if frame_pts in seen:
            return
        seen[frame_pts] = record(s, frame_pts, via)
        print(json.dumps(seen[frame_pts]), flush=True)


def record(s, frame_pts, via):
    return {
        "frame_pts": frame_pts,
        "via": via,
        "task": s.get_string("task"),
        "text": s.get_string("text"),
        "result": json.loads(s.get_string("result")),
        "inference_time_ms": s.get_value("inference-time-ms"),
    }


def on_buffer(pad, info, seen):
    meta = info.get_buffer().get_custom_meta("FlorenceCaptionMeta")
    if meta is not None:
        s = meta.get_structure()
        if s.get_value("fresh"):
            report(s, "meta", seen)
    return Gst.PadProbeReturn.OK


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--task", default="caption")
    ap.add_argument("--num-buffers", type=int, default=30)
    ap.add_argument("--mode", default="every-frame", choices=["live", "every-frame"])
    args = ap.parse_args()

    Gst.init(None)
    pipeline = Gst.parse_launch(
        f"videotestsrc num-buffers={args.num_buffers} pattern=ball ! "
        "video/x-raw,width=320,height=240,framerate=30/1 ! "
        f"florencecaption name=florence model-dir=\"{args.model_dir}\" mode={args.mode} task={args.task} num-beams=1 ! fakesink"
    )
    pipeline.get_by_name("florence").get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, on_buffer, seen := {})
    loop = GLib.MainLoop()
    status = {"error": None}

    def on_message(_bus, msg):
        if msg.type == Gst.MessageType.ERROR:
            err, _ = msg.parse_error()
            status["error"] = err.message
            loop.quit()
        elif msg.type == Gst.MessageType.EOS:
            loop.quit()
        elif msg.type == Gst.MessageType.ELEMENT and msg.get_structure().get_name() == "florence-caption":
            report(msg.get_structure(), "message", seen)

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        msg = bus.timed_pop_filtered(Gst.CLOCK_TIME_NONE, Gst.MessageType.ERROR)
        print(f"error: {msg.parse_error()[0].message if msg else 'cannot start the pipeline'}", file=sys.stderr)
        pipeline.set_state(Gst.State.NULL)
        return 1
    loop.run()
    pipeline.set_state(Gst.State.NULL)
    if status["error"]:
        print(f"error: {status['error']}", file=sys.stderr)
        return 1
    print(f"{len(seen)} results", file=sys.stderr)
    return 0 if seen else 2


if __name__ == "__main__":
    sys.exit(main())
