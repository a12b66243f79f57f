"""Element streams: N `florencecaption` instances in one gst-launch-1.0
pipeline (N branches `videotestsrc ! florencecaption ! fakesink`, every
instance on the same model-dir, so they share one model), or N gst-launch-1.0
processes of one branch each (the baseline). Each branch has its own source,
as N cameras would. The analyses are the instances' `florence-caption` bus
messages, printed by `gst-launch-1.0 -m` and timed as the driver reads them;
a result's latency is its `inference-time-ms` (the frame handed to the engine
until its result, turns on a shared model included)."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time

from reaped import Reaped
from streams_stats import Analysis, Measured

MESSAGE = re.compile(r'^Got message #\d+ from element "([^"]+)" \(element\): florence-caption, (.*)$')
FIELDS = {
    "latency": re.compile(r"\binference-time-ms=\(double\)([-+0-9.eE]+)"),
    "tokens": re.compile(r"\btoken-count=\(guint64\)(\d+)"),
    "cached": re.compile(r"\bvision-cached=\(boolean\)(true|false)"),
    "error": re.compile(r"\berror=\(string\)"),
}
# The frames: 640x480 like the HTTP image, a moving ball so that no two
# consecutive frames are equal (the engine would reuse the last frame's
# vision features for an equal one).
CAPS = "video/x-raw,width=640,height=480,framerate=30/1"


class ElementError(RuntimeError):
    pass


def branch(i: int, model_dir: str, mode: str, tokens: int, frames: int) -> str:
    """One camera: a source, its florencecaption instance and a sink. Live: an
    endless live source, stopped by the driver; every-frame: `frames` frames."""
    # A ball of its own colour per camera: identical frames from two sources
    # would share one vision pass (the model's shared features), which two
    # real cameras' frames never do.
    ball = f"pattern=ball foreground-color=0xff{(255 - 23 * i) % 256:02x}{(37 * i) % 256:02x}{(90 + 61 * i) % 256:02x}"
    src = f"videotestsrc is-live=true {ball}" if mode == "live" else \
        f"videotestsrc num-buffers={frames} {ball}"
    sink = "fakesink" if mode == "live" else "fakesink sync=false"
    return (f'{src} ! {CAPS} ! florencecaption name=s{i} model-dir="{model_dir}" mode={mode} task=caption '
            f"max-new-tokens={tokens} min-new-tokens={tokens} num-beams=1 ! {sink}")


def gst_env(plugin_dir: str, scratch: str) -> dict:
    """The built plugin alone on GST_PLUGIN_PATH (a folder holding a link to
    it), a registry of the run's own, and no HailoRT: the machine's installed
    plugin, registry and device stay out."""
    plugins = os.path.join(scratch, "plugins")
    os.makedirs(plugins, exist_ok=True)
    link = os.path.join(plugins, "libgstflorence.so")
    if not os.path.islink(link):
        os.symlink(os.path.join(os.path.abspath(plugin_dir), "libgstflorence.so"), link)
    return {**os.environ, "GST_PLUGIN_PATH": plugins, "GST_REGISTRY": os.path.join(scratch, "registry.bin"),
            "FLORENCE_HAILORT_LIBRARY": "/nonexistent/libhailort.so"}


def run(model_dir: str, mode: str, streams: int, separate: bool, rounds: int, tokens: int, env: dict,
        log_dir: str, guard_s: float) -> Measured:
    """`streams` streams in one pipeline, or (`separate`) in as many processes;
    each stream analyses `rounds` frames after a warm-up one."""
    per_process = [[i] for i in range(streams)] if separate else [list(range(streams))]
    found: queue.Queue = queue.Queue()
    procs = []
    tag = f"element-{mode}-{streams}-{'separate' if separate else 'one'}"
    for p, indices in enumerate(per_process):
        pipeline = "  ".join(branch(i, model_dir, mode, tokens, rounds + 1) for i in indices)
        log = open(os.path.join(log_dir, f"{tag}-{p}.log"), "w")
        proc = Reaped(["gst-launch-1.0", "-m", "-e", *pipeline.split()], env, subprocess.PIPE, log)
        threading.Thread(target=_read, args=(proc, p, found), daemon=True).start()
        procs.append((proc, log))
    measured = Measured(streams, len(procs))
    counts: dict[str, int] = {}
    ended = 0
    failed = True
    try:
        while min(counts.get(f"{p}/s{i}", 0) for p, ix in enumerate(per_process) for i in ix) < rounds + 1:
            try:
                item = found.get(timeout=guard_s)
            except queue.Empty:
                raise ElementError(f"{tag}: no result for {guard_s:.0f} s; logs in {log_dir}") from None
            if isinstance(item, Exception):
                raise item
            if item is None:
                ended += 1
                if ended == len(procs):
                    raise ElementError(f"{tag}: the pipelines ended before {rounds + 1} results per stream; "
                                       f"logs in {log_dir}")
                continue
            counts[item.stream] = counts.get(item.stream, 0) + 1
            measured.analyses.append(item)
        failed = False
    finally:
        for proc, _ in procs:
            if failed:
                proc.send(signal.SIGKILL)
            elif mode == "live":
                proc.send(signal.SIGINT)  # -e: EOS first, the analysis in flight drains
        for proc, log in procs:
            code = proc.reap(guard_s)
            log.close()
            if code != 0 and not failed:
                raise ElementError(f"{tag}: gst-launch-1.0 exited with {code}; see {log.name}")
    measured.peak_rss_kb = [proc.peak_rss_kb for proc, _ in procs]
    return measured


def _read(proc: Reaped, p: int, found: queue.Queue) -> None:
    """Every florence-caption message of process `p`, timed as it arrives; None at its end."""
    for line in proc.proc.stdout:
        m = MESSAGE.match(line)
        if not m:
            continue
        now = time.monotonic()
        fields = {k: r.search(m.group(2)) for k, r in FIELDS.items()}
        if fields["error"] or not fields["latency"]:
            found.put(ElementError(f"instance {m.group(1)}: {m.group(2)[:300]}"))
            continue
        found.put(Analysis(f"{p}/{m.group(1)}", now, float(fields["latency"].group(1)),
                           int(fields["tokens"].group(1)) if fields["tokens"] else -1,
                           bool(fields["cached"]) and fields["cached"].group(1) == "true"))
    found.put(None)
