"""The targets of issue #21 ("Faster than the same kernels") that one benchmark
run can measure, each as one line with its figure from the run and its verdict:
"(met)", "(not met)", or "(not measured in this run: why)" / "(not measurable on
N threads: ...)" where the run cannot say. bench.py prints them as `- target:`
lines after issue #10's."""

from __future__ import annotations

from dataclasses import dataclass

from report import fmt_ms, verdict

# The thread counts each target asks for.
LOOP_THREADS = (2, 4)
TRANSFORMERS_THREADS = (8, 16)
VISION_SIZE = 768
MAX_VISION_RATIO = 0.5
MAX_QUALITY_LOSS = 2.0  # points, on every task's every column
MIN_LOOP_RATIO = 1.15
MIN_TRANSFORMERS_RATIO = 1.0
MAX_COLD_RATIO = 1.5


def not_measured(why: str) -> str:
    return f"(not measured in this run: {why})"


def others(asked: tuple[int, ...], threads: int) -> str:
    """The thread counts a target asks for that this run did not have, and how to measure them."""
    rest = [t for t in asked if t != threads]
    return "; ".join(f"{t} threads {not_measured(f'run again with --threads {t}')}" for t in rest)


@dataclass(frozen=True)
class QualityLoss:
    """A configuration's largest loss against fp32 in the quality run (quality_tasks.worst_loss)."""
    row: str  # the scored configuration, e.g. "_qdq 384"
    reference: str  # fp32's row, e.g. "fp32 384"
    column: str  # where it falls furthest behind, e.g. "`<VQA>` acc"
    points: float  # by how much (negative: ahead in every column)


def integer_vision(fp32_vision_ms: float | None, best: tuple[str, float] | None, quality: QualityLoss | str) -> str:
    """Item 2. `best`: the 8-bit variant whose vision median at 768 is the smallest
    share of fp32's, and that median; `fp32_vision_ms`: fp32's vision median at 768
    in the same run (in the same group when fp32 768 is the reference);
    `quality`: that variant's loss in the quality run, or why there is none."""
    head = (f"#21 item 2, integer vision: the best 8-bit variant's vision at {VISION_SIZE} at most "
            f"{MAX_VISION_RATIO}x fp32's in the same run, and its quality within {MAX_QUALITY_LOSS:.0f} points of "
            "fp32 on every task: ")
    if best is None:
        return head + not_measured(f"no 8-bit variant at {VISION_SIZE}")
    if fp32_vision_ms is None:
        return head + not_measured(f"no fp32 at {VISION_SIZE}")
    variant, ms = best
    ratio = ms / fp32_vision_ms
    speed = (f"vision {variant} {VISION_SIZE} {fmt_ms(ms)} ms against fp32 {VISION_SIZE} {fmt_ms(fp32_vision_ms)} "
             f"ms: {ratio:.2f}x {verdict(ratio <= MAX_VISION_RATIO)}")
    if isinstance(quality, str):
        return f"{head}{speed}; quality {not_measured(quality)}"
    where = (f"largest loss {quality.points:.1f} points, {quality.column}" if quality.points > 0
             else "no column behind fp32")
    return (f"{head}{speed}; quality {quality.row} against {quality.reference} (the quality model's own size): "
            f"{where} {verdict(quality.points <= MAX_QUALITY_LOSS)}")


def against_loop(label: str, threads: int, ratio: float | None) -> str:
    """Item 3: the onnxruntime-Python loop's median over the engine's, fp32, at this run's threads."""
    head = (f"#21 item 3, fp32 graph rewrites: the engine at least {MIN_LOOP_RATIO}x the onnxruntime-Python loop at "
            f"{' and '.join(map(str, LOOP_THREADS))} threads: ")
    if ratio is None:
        return head + not_measured("no onnxruntime-Python loop timing of `<CAPTION>` greedy")
    figure = f"{label} `<CAPTION>` greedy at {threads} threads: {ratio:.2f}x "
    if threads not in LOOP_THREADS:
        return head + figure + not_measured(f"the target asks {' and '.join(map(str, LOOP_THREADS))} threads, "
                                            f"this run has {threads}")
    return f"{head}{figure}{verdict(ratio >= MIN_LOOP_RATIO)}; {others(LOOP_THREADS, threads)}"


def against_transformers(label: str, threads: int, ratio: float | None) -> str:
    """Item 4: transformers' median over the engine's, fp32, at this run's threads."""
    asked = " and ".join(map(str, TRANSFORMERS_THREADS))
    head = f"#21 item 4, threads on bigger machines: the engine at least as fast as transformers at {asked} threads: "
    figure = f"{label} `<CAPTION>` greedy at {threads} threads: {ratio:.2f}x " if ratio is not None else ""
    if threads < min(TRANSFORMERS_THREADS):
        return f"{head}{figure}(not measurable on {threads} threads: the target asks {asked})"
    if ratio is None:
        return head + not_measured("no transformers peer (it needs --checkpoint; --quick has none)")
    if threads not in TRANSFORMERS_THREADS:
        return head + figure + not_measured(f"the target asks {asked} threads, this run has {threads}")
    return f"{head}{figure}{verdict(ratio >= MIN_TRANSFORMERS_RATIO)}; {others(TRANSFORMERS_THREADS, threads)}"


def cold_start(label: str, cold_ms: float | None, warm_ms: float | None) -> str:
    """Item 5: `florenced run` from process start to its JSON line against the engine's warm median."""
    head = (f"#21 item 5, cold start: `florenced run` on one image, from process start to its JSON line (graph cache "
            f"in place), at most {MAX_COLD_RATIO}x a warm caption: ")
    if cold_ms is None or warm_ms is None:
        return head + not_measured("no `<CAPTION>` greedy case in this run (--cases)")
    ratio = cold_ms / warm_ms
    return (f"{head}{label} `<CAPTION>` greedy {fmt_ms(cold_ms)} ms against the engine's warm median "
            f"{fmt_ms(warm_ms)} ms: {ratio:.2f}x {verdict(ratio <= MAX_COLD_RATIO)}")
