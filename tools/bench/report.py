"""Markdown tables of a benchmark run: latency per case and system, stage times,
ratios to the engine, start-up and memory, and variant agreement."""

from __future__ import annotations

import statistics

STAGES = (("preprocess_ms", "preprocess"), ("vision_ms", "vision"), ("encoder_ms", "text encoder"),
          ("first_token_ms", "first token"), ("per_token_ms", "per token"))


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def verdict(ok: bool) -> str:
    """A target line's verdict, in its brackets."""
    return "(met)" if ok else "(not met)"


def fmt_ms(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.1f}" if x < 100 else f"{x:.0f}"


def stage_medians(runs: list[dict]) -> dict:
    out = {}
    for key, _ in STAGES:
        vals = [r["timings"].get(key) for r in runs if r["timings"].get(key) is not None]
        out[key] = median(vals) if vals else None
    return out


def latency_table(cases, rows, results: dict, ratios: bool) -> str:
    """rows: [(configuration label, system label, (group, key), (group, engine key))];
    results[(group, case_id, key)] = responses."""
    head = ["case", "configuration", "system", "median ms", "min - max", *[s for _, s in STAGES],
            "vs engine" if ratios else "vs engine (withheld)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for case in cases:
        for config, system, (group, key), (engine_group, engine_key) in rows:
            runs = results.get((group, case.id, key))
            if not runs:
                continue
            totals = [r["timings"]["total_ms"] for r in runs]
            st = stage_medians(runs)
            ratio = "-"
            base = results.get((engine_group, case.id, engine_key))
            if key == engine_key:
                ratio = "1"
            elif ratios and base:
                ratio = f"{median(totals) / median([r['timings']['total_ms'] for r in base]):.2f}x"
            cells = [case.label, config, system, fmt_ms(median(totals)),
                     f"{fmt_ms(min(totals))} - {fmt_ms(max(totals))}", *[fmt_ms(st[k]) for k, _ in STAGES], ratio]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def workers_table(workers) -> str:
    lines = ["| system | variant | process start + load ms | load ms | first run ms | peak RSS MB |",
             "|---|---|---|---|---|---|"]
    for w in workers:
        lines.append(f"| {w.system} | {w.variant} | {w.start_ms:.0f} | {w.ready['load_ms']:.0f} | "
                     f"{fmt_ms(w.first_run_ms)} | {w.peak_rss_kb / 1024:.0f} |")
    return "\n".join(lines)


def configs_table(rows, reference: str) -> str:
    """rows: [(configuration, engine ms, vision ms, per token ms, reference engine ms in the same group,
    vs reference engine, transformers / this, onnxruntime loop / engine, agreement on this model,
    agreement on the tiny model)]."""
    lines = [f"| configuration | engine `<CAPTION>` greedy median ms | vision | per token | {reference} engine, same "
             f"group | time vs {reference} engine | transformers {reference} greedy / this | onnxruntime loop / "
             f"engine | tokens vs {reference}, this model | tokens vs fp32 at its own size, tiny model fixtures |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| " + " | ".join(r) + " |")
    return "\n".join(lines)
