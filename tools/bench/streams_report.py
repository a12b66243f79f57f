"""Markdown of a streams benchmark run: one table per workload (every stream
count, one process against one process per stream) and the issue's targets,
each with its figure from the run."""

from __future__ import annotations

import math

from streams_stats import Measured


def _f(x: float, digits: int = 2) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def _ms(x: float) -> str:
    return "-" if math.isnan(x) else (f"{x:.1f}" if x < 100 else f"{x:.0f}")


def table(cases: dict[tuple[int, bool], Measured], http: bool) -> str:
    """cases[(streams, separate)]; `http`: also each round's time (N requests at once)."""
    head = ["streams", "processes", "peak RSS MB", "RSS vs 1 stream", "analyses/s", "per stream", "p50 ms",
            "p99 ms", "vs N processes"] + (["N at once, median s"] if http else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    one = cases.get((1, False))
    for (n, separate), m in sorted(cases.items()):
        other = cases.get((n, not separate))
        vs = m.per_second / other.per_second if not separate and other else math.nan
        cells = [str(n), str(m.processes), _f(m.rss_kb / 1024, 1),
                 f"{_f(m.rss_kb / one.rss_kb)}x" if one else "-", _f(m.per_second), _f(m.per_stream),
                 _ms(m.latency_ms(50)), _ms(m.latency_ms(99)), f"{_f(vs)}x" if not math.isnan(vs) else "-"]
        if http:
            cells.append(_f(m.median_round_s))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _verdict(ok: bool) -> str:
    return "met" if ok else "not met"


def _per_workload(results: dict[str, dict[tuple[int, bool], Measured]], labels: dict[str, str],
                  case: tuple[int, bool], against: tuple[int, bool], figure, ok) -> list[str]:
    """For each workload with both cases: figure(case) / figure(against), with its verdict."""
    parts = []
    for fam, cases in results.items():
        this, that = cases.get(case), cases.get(against)
        if this and that:
            r = figure(this) / figure(that)
            parts.append(f"{labels[fam]} {r:.2f}x ({_verdict(ok(r))})")
    return parts


def memory_target(results: dict[str, dict[tuple[int, bool], Measured]], labels: dict[str, str]) -> str:
    parts = _per_workload(results, labels, (4, False), (1, False), lambda m: m.rss_kb, lambda r: r <= 1.3)
    figure = "; ".join(parts) if parts else "not measured (no 1- and 4-stream cases in this run)"
    return f"resident memory with 4 streams at most 1.3x one stream, one process: {figure}"


def concurrency_target(detailed: dict[tuple[int, bool], Measured] | None) -> str:
    what = ("4 concurrent 100-token detailed captions finish at least 1.8x sooner than the same 4 one after "
            "another on the same cores")
    one, four = (detailed.get((1, False)), detailed.get((4, False))) if detailed else (None, None)
    if not (one and four):
        return f"{what}: not measured (no 1- and 4-client `<MORE_DETAILED_CAPTION>` cases in this run)"
    after = 4 * one.latency_ms(50) / 1e3
    at_once = four.median_round_s
    r = after / at_once
    return (f"{what}: one after another 4 x {one.latency_ms(50) / 1e3:.2f} s = {after:.2f} s (1 client, "
            f"its median), at once {at_once:.2f} s (4 clients, median round): {r:.2f}x ({_verdict(r >= 1.8)})")


def single_stream_target(results: dict[str, dict[tuple[int, bool], Measured]], labels: dict[str, str]) -> str:
    parts = _per_workload(results, labels, (1, False), (1, True), lambda m: m.per_second, lambda r: r >= 0.9)
    figure = "; ".join(parts) if parts else "not measured (no 1-stream cases in this run)"
    return (f"a single stream no slower than the 1-process baseline, within 10 % (analyses/s; both runs are "
            f"one process with one stream, so this is the run's noise): {figure}")
