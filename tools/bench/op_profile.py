"""Where ONNX Runtime's time goes, per graph and operator type, and how each
part scales with threads: the profile behind the thread defaults and the
estimate for machines with more cores than this one.

    python tools/bench/op_profile.py --model-dir DIR [--variant _int8] [--image-size 768]
                                     [--threads 1,2] [--rounds 3] [--tokens 20] [--image PNG]

Each thread count gets its own sessions of the four graphs (ort_loop.py's greedy
loop, the same kernels as the engine's: one ONNX Runtime) with ONNX Runtime's
profiler on; a warm-up caption, then `--rounds` `<CAPTION>`s of exactly
`--tokens` tokens. The profiler's per-node kernel times are summed per graph
and operator type and divided by the rounds. Printed: per graph, the wall time
of its runs per caption at each thread count, the speed-up against the fewest
threads, the parallel fraction p that Amdahl's law gives for it
(T(n) = T(1) * ((1 - p) + p / n)), and T at 4, 8 and 16 threads from that p;
then the operator types that take 90 % of each graph's kernel time.

The projection is an upper bound for a graph bound by memory bandwidth (the
decoder at batch 1 reads all its weights every token): more threads do not add
bandwidth.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import tempfile

from PIL import Image

from ort_loop import OrtFlorence

GRAPH_LABELS = {"vision": "vision encoder", "embed": "token embedding", "encoder": "text encoder",
                "decoder": "decoder (all steps)"}
PROJECTED = (4, 8, 16)
CONTAINERS = {"If", "Loop", "Scan"}


def profiled_captions(a, threads: int, out_dir: str) -> dict:
    """{graph: {"wall_us": per caption, "ops": {op type: kernel us per caption}}}."""
    prefix = os.path.join(out_dir, f"t{threads}")
    model = OrtFlorence(a.model_dir, a.variant, threads, a.image_size, profile_prefix=prefix)
    img = Image.open(a.image)
    img.load()
    for _ in range(a.rounds + 1):
        out = model.generate(img, None, "<CAPTION>", a.tokens, a.tokens)
        assert out["token_count"] == a.tokens, out["token_count"]
    result = {}
    for graph, session in model.sessions().items():
        path = session.end_profiling()
        events = json.load(open(path))
        runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
        # Each caption makes the same runs on a graph: the first caption's are the warm-up.
        per_caption = len(runs) // (a.rounds + 1)
        timed = runs[per_caption:]
        start = timed[0]["ts"]
        ops: dict[str, float] = collections.defaultdict(float)
        for e in events:
            # An If node's time is its branch's nodes', which are profiled themselves.
            if (e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= start
                    and e["args"]["op_name"] not in CONTAINERS):
                ops[e["args"]["op_name"]] += e["dur"] / a.rounds
        result[graph] = {"wall_us": sum(r["dur"] for r in timed) / a.rounds, "ops": dict(ops)}
    for leftover in glob.glob(prefix + "*"):
        os.remove(leftover)
    return result


def amdahl_p(t1: float, tn: float, n: int) -> float:
    """The parallel fraction p with tn = t1 * ((1 - p) + p / n), clamped to [0, 1]."""
    if n <= 1 or t1 <= 0:
        return 0.0
    return min(1.0, max(0.0, (1 - tn / t1) / (1 - 1 / n)))


def ms(us: float) -> str:
    v = us / 1000
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"


def stage_table(threads: list[int], profiles: dict) -> str:
    lo, hi = threads[0], threads[-1]
    head = ["graph", *[f"{t} threads ms" for t in threads], f"{hi} vs {lo}", "parallel fraction p",
            *[f"est. {n} threads ms" for n in PROJECTED]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    total = {t: 0.0 for t in threads}
    for graph, label in GRAPH_LABELS.items():
        walls = [profiles[t][graph]["wall_us"] for t in threads]
        for t, w in zip(threads, walls):
            total[t] += w
        lines.append("| " + " | ".join(row(label, walls, lo, hi)) + " |")
    lines.append("| " + " | ".join(row("caption (all graphs)", [total[t] for t in threads], lo, hi)) + " |")
    return "\n".join(lines)


def row(label: str, walls: list[float], lo: int, hi: int) -> list[str]:
    """Times are at `lo` and `hi` threads; the projection assumes lo = 1 when it is 1."""
    t_lo, t_hi = walls[0], walls[-1]
    p = amdahl_p(t_lo, t_hi, hi // lo) if hi > lo else 0.0
    t1 = t_lo * lo / (lo * (1 - p) + p) if lo > 1 else t_lo  # back to one thread
    cells = [label, *[ms(w) for w in walls], f"{t_lo / t_hi:.2f}x" if t_hi else "-", f"{p:.2f}"]
    cells += [ms(t1 * ((1 - p) + p / n)) for n in PROJECTED]
    return cells


def ops_table(threads: list[int], profiles: dict, share: float = 0.9) -> str:
    lo, hi = threads[0], threads[-1]
    head = ["graph", "operator", *[f"{t} threads ms" for t in threads], f"{hi} vs {lo}", f"share at {lo}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for graph, label in GRAPH_LABELS.items():
        ops = profiles[lo][graph]["ops"]
        total = sum(ops.values()) or 1.0
        covered = 0.0
        for op, us in sorted(ops.items(), key=lambda kv: -kv[1]):
            if covered >= share * total:
                break
            covered += us
            times = [profiles[t][graph]["ops"].get(op, 0.0) for t in threads]
            speedup = f"{times[0] / times[-1]:.2f}x" if times[-1] else "-"
            lines.append("| " + " | ".join([label, op, *[ms(x) for x in times], speedup,
                                            f"{100 * us / total:.0f} %"]) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--variant", default="")
    ap.add_argument("--image-size", type=int)
    ap.add_argument("--threads", default="1,2", help="comma-separated, ascending")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--image", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                    "tests", "fixtures", "images", "scene_640x480.png"))
    a = ap.parse_args()
    threads = sorted({int(t) for t in a.threads.split(",")})
    with tempfile.TemporaryDirectory(prefix="florence-op-profile-") as out_dir:
        profiles = {t: profiled_captions(a, t, out_dir) for t in threads}
    size = a.image_size or "the model's"
    print(f"## Operator profile: {os.path.basename(os.path.normpath(a.model_dir))} "
          f"{a.variant or 'fp32'}, input {size}, `<CAPTION>` greedy {a.tokens} tokens, "
          f"{a.rounds} rounds, threads {', '.join(map(str, threads))}\n")
    print("Wall time of each graph's runs per caption (ONNX Runtime's profiler), the parallel fraction from "
          "the fewest to the most threads (Amdahl), and the time it gives for more threads (an upper bound "
          "where memory bandwidth binds):\n")
    print(stage_table(threads, profiles))
    print("\nKernel time per caption by operator type (the types that make 90 % of each graph's):\n")
    print(ops_table(threads, profiles))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
