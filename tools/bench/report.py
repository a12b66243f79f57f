"""Markdown tables of a benchmark run: latency per case and system, stage times,
ratios to the engine, start-up and memory, and variant agreement."""

from __future__ import annotations

import statistics

STAGES = (("preprocess_ms", "preprocess"), ("vision_ms", "vision"), ("encoder_ms", "text encoder"),
          ("first_token_ms", "first token"), ("per_token_ms", "per token"))


def median(xs: list[float]) -> float:
    return statistics.median(xs)


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
    """rows: [(variant_label, system_label, key)]; results[(case_id, key)] = responses."""
    head = ["case", "variant", "system", "median ms", "min - max", *[s for _, s in STAGES],
            "vs engine" if ratios else "vs engine (withheld)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for case in cases:
        for variant, system, key, engine_key in rows:
            runs = results.get((case.id, key))
            if not runs:
                continue
            totals = [r["timings"]["total_ms"] for r in runs]
            st = stage_medians(runs)
            ratio = "-"
            base = results.get((case.id, engine_key))
            if ratios and base and key != engine_key:
                ratio = f"{median(totals) / median([r['timings']['total_ms'] for r in base]):.2f}x"
            elif key == engine_key:
                ratio = "1"
            cells = [case.label, variant, system, fmt_ms(median(totals)),
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


def variants_table(rows) -> str:
    """rows: [(variant, engine caption ms, vs fp32, transformers-greedy / engine, base agreement, tiny agreement)]."""
    lines = ["| variant | engine `<CAPTION>` greedy median ms | time vs fp32 engine | transformers fp32 greedy / this "
             "| tokens vs fp32, this model | tokens vs fp32, tiny model fixtures |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| " + " | ".join(r) + " |")
    return "\n".join(lines)
