"""The streams benchmark behind scripts/bench-streams.sh (issue #19): N
streams on one model in one process against the same N streams in N
processes, in the same run, for two kinds of user:

- `florencecaption` instances in one gst-launch-1.0 pipeline (streams_element.py),
  in `mode=every-frame` and `mode=live`, `<CAPTION>` greedy, 20 tokens;
- florenced clients over HTTP on loopback (streams_http.py), one florenced
  with `max_concurrent_requests: N` against N florenced, `<CAPTION>` 20
  tokens and `<MORE_DETAILED_CAPTION>` 100 tokens, greedy.

Every analysis generates exactly its token count (min = max new tokens) and
encodes its own image. Prints markdown tables on stdout, progress on stderr;
exit status 1 when an analysis had another length.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
from dataclasses import dataclass

import streams_element
import streams_http
import streams_report
from bench import cpu_model
from streams_stats import Measured


@dataclass(frozen=True)
class Workload:
    id: str
    label: str  # the table's heading
    short: str  # in the target lines
    tokens: int
    mode: str | None = None  # an element mode, or
    task: str | None = None  # a florenced task


WORKLOADS = (
    Workload("every-frame", "`florencecaption` instances in one pipeline, `mode=every-frame`, `<CAPTION>` greedy, "
             "20 tokens", "element every-frame", 20, mode="every-frame"),
    Workload("live", "`florencecaption` instances in one pipeline, `mode=live` (30 fps sources), `<CAPTION>` "
             "greedy, 20 tokens", "element live", 20, mode="live"),
    Workload("caption", "florenced clients, `<CAPTION>` greedy, 20 tokens", "florenced `<CAPTION>`", 20,
             task="<CAPTION>"),
    Workload("detailed", "florenced clients, `<MORE_DETAILED_CAPTION>` greedy, 100 tokens",
             "florenced `<MORE_DETAILED_CAPTION>`", 100, task="<MORE_DETAILED_CAPTION>"),
)


def log(msg: str) -> None:
    print(f"bench-streams: {msg}", file=sys.stderr, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--florenced", required=True, help="the florenced binary")
    ap.add_argument("--plugin-dir", required=True, help="the folder holding the built libgstflorence.so")
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--image", required=True, help="the image the HTTP clients send (each with one pixel changed)")
    ap.add_argument("--streams", default="1,2,4,8", help="stream counts [1,2,4,8]")
    ap.add_argument("--rounds", type=int, default=3, help="timed analyses per stream, after a warm-up one [3]")
    ap.add_argument("--workloads", default=",".join(w.id for w in WORKLOADS),
                    help=f"[{','.join(w.id for w in WORKLOADS)}]")
    ap.add_argument("--log-dir", help="every process's log [a new temporary directory]")
    ap.add_argument("--guard-s", type=float, default=1800,
                    help="hang guard: the longest wait for one result or one process [1800]")
    a = ap.parse_args()

    counts = [int(n) for n in a.streams.split(",") if n.strip()]
    workloads = [w for w in WORKLOADS if w.id in a.workloads.split(",")]
    log_dir = a.log_dir or tempfile.mkdtemp(prefix="florence-bench-streams-")
    os.makedirs(log_dir, exist_ok=True)
    log(f"logs in {log_dir}")
    model = os.path.abspath(a.model_dir)
    env = streams_element.gst_env(a.plugin_dir, log_dir)
    uris = streams_http.images(a.image, max(counts) * (a.rounds + 1)) if any(w.task for w in workloads) else []
    load_before = os.getloadavg()

    results: dict[str, dict[tuple[int, bool], Measured]] = {w.id: {} for w in workloads}
    for n in counts:
        for w in workloads:
            for separate in (False, True):
                log(f"{w.short}: {n} stream(s) in {n if separate else 1} process(es)")
                if w.mode:
                    m = streams_element.run(model, w.mode, n, separate, a.rounds, w.tokens, env, log_dir, a.guard_s)
                else:
                    m = streams_http.run(a.florenced, model, w.task, w.tokens, n, separate, a.rounds, uris,
                                         log_dir, a.guard_s)
                results[w.id][(n, separate)] = m
                log(f"  {m.per_second:.2f} analyses/s, p50 {m.latency_ms(50):.0f} ms, "
                    f"peak RSS {m.rss_kb / 1024:.0f} MB")

    wrong = [(w.short, n, separate, x.tokens) for w in workloads for (n, separate), m in results[w.id].items()
             for x in m.analyses if x.tokens != w.tokens]
    cached = sum(m.vision_cached for w in workloads for m in results[w.id].values())
    load_after = os.getloadavg()
    labels = {w.id: w.short for w in workloads}

    print(f"## Streams benchmark, {datetime.date.today().isoformat()}\n")
    print(f"- CPU: {cpu_model()} ({os.cpu_count()} logical CPUs); load average {load_before[0]:.1f} before the "
          f"run, {load_after[0]:.1f} after; threads: the default in every process (its one ONNX Runtime pool)")
    print(f"- model: {model}; HTTP image {os.path.basename(a.image)} (640x480 sources for the element)")
    print(f"- {a.rounds} timed analyses per stream after a warm-up one; every analysis generates exactly its token "
          "count (min = max new tokens) and encodes its own image")
    print("- peak RSS: each process's ru_maxrss from wait4 when it is reaped (its VmHWM at exit), added up over "
          "the processes of a case; `RSS vs 1 stream`: against 1 stream in 1 process")
    print("- analyses/s: every stream's analyses after the last stream's warm-up one, over the time from then to "
          "the last; latency: the element's `inference-time-ms` (turns on a shared model included), an HTTP "
          "request's round trip; `vs N processes`: analyses/s of 1 process over N processes")
    print(f"- check: {len(wrong)} analyses of another length"
          + (f" (first: {wrong[0]})" if wrong else "") + f"; {cached} timed element analyses reused vision features (their messages say)")
    print(f"- target: {streams_report.memory_target(results, labels)}")
    print(f"- target: {streams_report.concurrency_target(results.get('detailed'))}")
    print(f"- target: {streams_report.single_stream_target(results, labels)}")
    for w in workloads:
        print(f"\n{w.label}:\n")
        print(streams_report.table(results[w.id], http=bool(w.task)))
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
