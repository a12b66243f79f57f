#!/usr/bin/env python3
"""A long run of the florencecaption element: frames through, results out,
resident memory sampled, and a stall detected by lack of progress.

    GST_PLUGIN_PATH=target/debug /usr/bin/python3 scripts/element_long_run.py \
        --mode live --frames 100000

Runs `videotestsrc num-buffers=N pattern=ball ! video/x-raw,WxH !
florencecaption mode=MODE ! fakesink sync=false` (text_src to a second
fakesink) as fast as it goes, counts the buffers reaching the sink, the
`florence-caption` bus messages and the text_src buffers, samples this
process's RSS every second, and prints one JSON object at the end. Exits
non-zero when the pipeline errors or stops making progress for --stall-s
seconds before EOS, when a frame is missing, in every-frame mode when the
results are not one per frame, in live mode when there is no result, and when
RSS at EOS exceeds the RSS after the warm-up (the first --warm-up frames) by
more than --rss-slack-mib.
"""

import argparse
import json
import os
import sys
import time

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", default="tests/fixtures/tiny-florence2")
    ap.add_argument("--mode", default="live", choices=["live", "every-frame"])
    ap.add_argument("--frames", type=int, default=100000)
    ap.add_argument("--size", default="160x120", help="frame size WxH")
    ap.add_argument("--max-new-tokens", type=int, default=20)
    ap.add_argument("--warm-up", type=int, default=0, help="frames before the start RSS (default: 2 %% of --frames)")
    ap.add_argument("--stall-s", type=float, default=120.0, help="no new frame for this long is a stall")
    ap.add_argument("--rss-slack-mib", type=float, default=32.0)
    args = ap.parse_args()
    width, height = args.size.split("x")
    warm_up = args.warm_up or max(1, args.frames // 50)

    Gst.init(None)
    pipeline = Gst.parse_launch(
        f"videotestsrc num-buffers={args.frames} pattern=ball ! "
        f"video/x-raw,format=RGB,width={width},height={height},framerate=30/1 ! "
        f'florencecaption name=f model-dir="{args.model_dir}" mode={args.mode} threads=1 '
        f"num-beams=1 max-new-tokens={args.max_new_tokens} ! fakesink name=sink sync=false "
        "f.text_src ! queue ! fakesink name=text sync=false"
    )
    n = {"frames": 0, "messages": 0, "texts": 0}
    state = {"error": None, "eos": False, "stalled": False, "last": 0, "last_change": time.monotonic()}
    samples = []
    rss = {"start": None}

    def count(key):
        def probe(_pad, _info):
            n[key] += 1
            if key == "frames" and n["frames"] == warm_up:
                rss["start"] = rss_kib()
            return Gst.PadProbeReturn.OK

        return probe

    pipeline.get_by_name("sink").get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, count("frames"))
    pipeline.get_by_name("text").get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, count("texts"))
    loop = GLib.MainLoop()

    def on_message(_bus, msg):
        if msg.type == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            state["error"] = f"{err.message} ({debug})"
            loop.quit()
        elif msg.type == Gst.MessageType.EOS:
            state["eos"] = True
            loop.quit()
        elif msg.type == Gst.MessageType.ELEMENT and msg.get_structure().get_name() == "florence-caption":
            n["messages"] += 1

    def tick():
        now = time.monotonic()
        samples.append(rss_kib())
        if n["frames"] != state["last"]:
            state["last"], state["last_change"] = n["frames"], now
        elif now - state["last_change"] > args.stall_s:
            state["stalled"] = True
            loop.quit()
            return False
        return True

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    started = time.monotonic()
    GLib.timeout_add(1000, tick)
    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        msg = bus.timed_pop_filtered(Gst.CLOCK_TIME_NONE, Gst.MessageType.ERROR)
        print(f"error: {msg.parse_error()[0].message if msg else 'cannot start the pipeline'}", file=sys.stderr)
        return 1
    loop.run()
    elapsed = time.monotonic() - started
    end = rss_kib()
    element = pipeline.get_by_name("f")
    report = {
        "mode": args.mode,
        "size": args.size,
        "frames_asked": args.frames,
        "frames_through": n["frames"],
        "results_messages": n["messages"],
        "results_text_buffers": n["texts"],
        "captions_total": element.get_property("captions-total"),
        "frames_skipped": element.get_property("frames-skipped"),
        "eos": state["eos"],
        "stalled": state["stalled"],
        "error": state["error"],
        "seconds": round(elapsed, 1),
        "frames_per_s": round(n["frames"] / elapsed, 1) if elapsed else None,
        "rss_mib_after_warm_up": round((rss["start"] or 0) / 1024, 1),
        "rss_mib_at_eos": round(end / 1024, 1),
        "rss_mib_max": round(max(samples + [end]) / 1024, 1),
        "rss_samples": len(samples),
        "pid": os.getpid(),
    }
    pipeline.set_state(Gst.State.NULL)
    problems = []
    if state["error"]:
        problems.append(f"pipeline error: {state['error']}")
    if state["stalled"]:
        problems.append(f"no progress for {args.stall_s} s at frame {n['frames']}")
    if not state["eos"]:
        problems.append("no EOS")
    if n["frames"] != args.frames:
        problems.append(f"{n['frames']} of {args.frames} frames reached the sink")
    if args.mode == "every-frame" and not (n["messages"] == n["texts"] == args.frames):
        problems.append(f"every-frame: {n['messages']} messages and {n['texts']} text buffers for {args.frames} frames")
    if args.mode == "live" and n["messages"] == 0:
        problems.append("live: no result")
    if rss["start"] and end > rss["start"] + args.rss_slack_mib * 1024:
        problems.append(f"RSS grew from {rss['start']} to {end} KiB (slack {args.rss_slack_mib} MiB)")
    report["problems"] = problems
    print(json.dumps(report), flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
