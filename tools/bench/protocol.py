"""The JSON-lines protocol every benchmarked system speaks (florenced/src/bench.rs
is the engine's side; the Python peers use `serve` below).

The worker loads its model once and announces `{"ready": true, "load_ms": ...,
"peak_rss_kb": ...}`; then each stdin line is a request (`image`, `task`,
optional `text`, `region`, `prompt_ids`, `max_new_tokens`, `min_new_tokens`,
`num_beams`) answered by one stdout line (`ids`, `token_count`, `timings` in
ms, `peak_rss_kb`; the engine adds the decoded `text` and its post-processed
`result`, which the quality table scores) or `{"error": ...}`.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback


def peak_rss_kb() -> int | None:
    """VmHWM: the most memory this process has had resident."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def serve(load, run, version: str) -> None:
    """Runs `system = load()` (timed), then answers `run(system, request)` per stdin line."""
    # Libraries print to stdout (warnings, progress); the protocol keeps the real
    # stdout for itself and sends everything else to stderr.
    proto = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    t = time.perf_counter()
    system = load()
    load_ms = (time.perf_counter() - t) * 1e3
    proto.write(json.dumps({"ready": True, "load_ms": load_ms, "peak_rss_kb": peak_rss_kb(),
                                "version": version}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            out = run(system, json.loads(line))
            out["peak_rss_kb"] = peak_rss_kb()
        except Exception as e:  # one bad request is reported, the worker goes on
            traceback.print_exc()
            out = {"error": f"{type(e).__name__}: {e}"}
        proto.write(json.dumps(out) + "\n")


def ms(t0: float, t1: float) -> float:
    return (t1 - t0) * 1e3
