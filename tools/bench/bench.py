"""The benchmark driver behind scripts/bench.sh: the engine (`florenced bench`),
a plain onnxruntime-Python loop over the same graphs and transformers, timed in
one run, interleaved (A B C A B C ...), on the same image and thread count;
prints markdown tables on stdout, progress on stderr.

Before any ratio is printed the onnxruntime loop is checked against
transformers: on the tiny model's recorded references (every fixture case) and,
when the transformers peer runs, on the benchmark model itself. If a check
fails, the ratios are withheld and the exit status is 1.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

import report
from agreement import Agreement, Check
from ort_loop import graph_files
from workers import Worker

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_VARIANTS = "fp32,_fp16,_quantized,_int8,_uint8,_q4,_q4f16,_bnb4"


@dataclass(frozen=True)
class Case:
    id: str
    label: str
    task: str
    tokens: int
    beams: int

    def request(self, image: str) -> dict:
        # min = max: every system generates exactly `tokens` tokens.
        return {"image": image, "task": self.task, "max_new_tokens": self.tokens, "min_new_tokens": self.tokens,
                "num_beams": self.beams}


CASES = (
    Case("caption-greedy", "`<CAPTION>` greedy, 20 tokens", "<CAPTION>", 20, 1),
    Case("caption-beam3", "`<CAPTION>` 3 beams, 20 tokens", "<CAPTION>", 20, 3),
    Case("mdc-greedy", "`<MORE_DETAILED_CAPTION>` greedy, 100 tokens", "<MORE_DETAILED_CAPTION>", 100, 1),
)
ENGINE, ORT, HF = "engine", "onnxruntime-Python loop", "transformers"


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def variant_label(v: str) -> str:
    return v or "fp32"


def present(model_dir: str, variant: str) -> bool:
    return all(os.path.isfile(p) for p in graph_files(model_dir, variant))


class System(Worker):
    def __init__(self, system: str, variant: str, argv: list[str], log_dir: str):
        self.system, self.variant, self.key = system, variant_label(variant), f"{system} {variant_label(variant)}"
        log(f"starting {self.key}")
        super().__init__(self.key, argv, log_dir)
        self.first_run_ms = None

    def supports(self, case: Case) -> bool:
        return case.beams == 1 or self.system != ORT


def engine_argv(a, model_dir: str, variant: str) -> list[str]:
    return [a.florenced, "bench", "--model-dir", model_dir, "--variant", variant, "--threads", str(a.threads)]


def ort_argv(a, model_dir: str, variant: str) -> list[str]:
    return [a.ort_python, os.path.join(HERE, "ort_peer.py"), "--model-dir", model_dir, "--variant", variant,
            "--threads", str(a.threads)]


def fixture_requests(fixtures: str, images: list[str] | None) -> list[tuple[str, dict, dict]]:
    """(case name, engine request, recorded case) for every recorded fixture case (of `images`)."""
    refs = json.load(open(os.path.join(fixtures, "references.json")))
    files = {im["name"]: os.path.join(fixtures, im["file"]) for im in refs["images"]}
    unknown = set(images or []) - set(files)
    if unknown:
        raise SystemExit(f"bench: no fixture images named {sorted(unknown)}; there are {sorted(files)}")
    out = []
    for c in refs["cases"]:
        if images and c["image"] not in images:
            continue
        req = {"image": files[c["image"]], "task": c["task"], "max_new_tokens": c["max_new_tokens"], "num_beams": 1}
        if c.get("text_input"):
            req["text"] = c["text_input"]
        if c.get("region"):
            req["region"] = c["region"]
            req.pop("text", None)
        out.append((f"{c['image']} {c['task']}", req, c))
    return out


def tiny_checks(a, log_dir: str, variants: list[str]) -> tuple[Check, dict]:
    """The onnxruntime loop against transformers' recorded ids on the tiny model, and
    each variant's engine ids against the fp32 engine's there."""
    refs = json.load(open(os.path.join(a.fixtures, "references.json")))
    tiny = os.path.normpath(os.path.join(a.fixtures, refs["model_dir"]))
    cases = fixture_requests(a.fixtures, a.fixture_images.split(",") if a.fixture_images else None)
    check = Check("onnxruntime loop vs transformers (tiny model, recorded references, greedy)")
    w = System(ORT, "", ort_argv(a, tiny, ""), log_dir)
    try:
        for name, req, case in cases:
            # The loop builds no prompts with task inputs: it takes the recorded prompt ids.
            r = {**{k: v for k, v in req.items() if k not in ("text", "region")}, "prompt_ids": case["input_ids"]}
            want = case["greedy"]
            check.add(name, w.ask(r)["ids"], want["ids"], want.get("margins"))
    finally:
        w.close()
    log(check.summary())
    agreements = {}
    tiny_variants = [v for v in variants if v and present(tiny, v)]
    if tiny_variants:
        fp32 = System(ENGINE, "", engine_argv(a, tiny, ""), log_dir)
        try:
            base = [fp32.ask(req)["ids"] for _, req, _ in cases]
        finally:
            fp32.close()
        for v in tiny_variants:
            w = System(ENGINE, v, engine_argv(a, tiny, v), log_dir)
            agr = Agreement()
            try:
                for (_, req, _), want in zip(cases, base):
                    agr.add(w.ask(req)["ids"], want)
            finally:
                w.close()
            agreements[v] = agr
            log(f"tiny model {v} vs fp32: {agr.summary()}")
    return check, agreements


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--florenced", required=True, help="the florenced binary (release build)")
    ap.add_argument("--model-dir", required=True, help="the model to time")
    ap.add_argument("--checkpoint", help="its PyTorch checkpoint (for the transformers peer); none: no transformers")
    ap.add_argument("--ort-python", required=True, help="python with onnxruntime (tools/bench/requirements-ort.txt)")
    ap.add_argument("--hf-python", help="python with transformers (tools/export/requirements.txt)")
    ap.add_argument("--fixtures", required=True, help="tests/fixtures (references.json, images, tiny model)")
    ap.add_argument("--fixture-images", help="comma-separated fixture image names for the tiny-model checks [all]")
    ap.add_argument("--image", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--variants", default=DEFAULT_VARIANTS,
                    help=f"comma-separated file suffixes, fp32 for none; absent ones are skipped [{DEFAULT_VARIANTS}]")
    ap.add_argument("--cases", default=",".join(c.id for c in CASES), help="which of the cases to time")
    ap.add_argument("--log-dir", help="workers' stderr logs [a new temporary directory]")
    a = ap.parse_args()

    log_dir = a.log_dir or tempfile.mkdtemp(prefix="florence-bench-")
    os.makedirs(log_dir, exist_ok=True)
    log(f"worker logs in {log_dir}")
    wanted = ["" if v.strip() in ("fp32", "") else v.strip() for v in a.variants.split(",")]
    if "" not in wanted:
        wanted.insert(0, "")  # fp32 is what the variants are compared with
    variants = [v for v in dict.fromkeys(wanted) if present(a.model_dir, v)]
    skipped = [variant_label(v) for v in dict.fromkeys(wanted) if v not in variants]
    if "" not in variants:
        log(f"{a.model_dir} has no float32 graphs")
        return 2
    cases = [c for c in CASES if c.id in a.cases.split(",")]
    image = os.path.abspath(a.image)

    tiny_check, tiny_agreement = tiny_checks(a, log_dir, wanted)

    systems: list[System] = []
    try:
        for v in variants:
            systems.append(System(ENGINE, v, engine_argv(a, a.model_dir, v), log_dir))
            systems.append(System(ORT, v, ort_argv(a, a.model_dir, v), log_dir))
        if a.checkpoint:
            systems.append(System(HF, "", [a.hf_python, os.path.join(HERE, "hf_peer.py"), "--checkpoint",
                                           a.checkpoint, "--model-dir", a.model_dir, "--threads", str(a.threads)],
                                  log_dir))
        for s in systems:  # ONNX Runtime's and torch's first-run costs, kept out of the rounds
            s.first_run_ms = s.ask(CASES[0].request(image))["timings"]["total_ms"]
        results: dict[tuple[str, str], list[dict]] = {}
        for r in range(a.rounds):
            for case in cases:
                for s in systems:
                    if s.supports(case):
                        results.setdefault((case.id, s.key), []).append(s.ask(case.request(image)))
            log(f"round {r + 1}/{a.rounds} done")
    finally:
        for s in systems:
            s.close()

    # Is the onnxruntime loop right on this model too? (Same ids as transformers greedy.)
    checks = [tiny_check]
    engine_vs_hf = Check("engine vs transformers (this model, all cases)")
    if a.checkpoint:
        base_check = Check("onnxruntime loop vs transformers (this model, greedy)")
        for case in cases:
            hf = results[(case.id, f"{HF} fp32")][0]
            if case.beams == 1:
                base_check.add(case.id, results[(case.id, f"{ORT} fp32")][0]["ids"], hf["ids"], hf.get("margins"))
            engine_vs_hf.add(case.id, results[(case.id, f"{ENGINE} fp32")][0]["ids"], hf["ids"],
                             hf.get("margins") if case.beams == 1 else None)
        checks.append(base_check)
        log(base_check.summary())
    ratios = all(c.ok for c in checks)

    rows = []
    for v in variants:
        engine_key = f"{ENGINE} {variant_label(v)}"
        rows.append((variant_label(v), ENGINE, engine_key, engine_key))
        rows.append((variant_label(v), ORT, f"{ORT} {variant_label(v)}", engine_key))
    if a.checkpoint:
        rows.append(("fp32", HF, f"{HF} fp32", f"{ENGINE} fp32"))

    def med(case_id: str, key: str) -> float | None:
        runs = results.get((case_id, key))
        return report.median([x["timings"]["total_ms"] for x in runs]) if runs else None

    variant_rows = []
    for v in variants[1:]:
        agr = Agreement()
        for case in cases:
            agr.add(results[(case.id, f"{ENGINE} {v}")][0]["ids"], results[(case.id, f"{ENGINE} fp32")][0]["ids"])
        this = med("caption-greedy", f"{ENGINE} {v}")
        fp32 = med("caption-greedy", f"{ENGINE} fp32")
        hf = med("caption-greedy", f"{HF} fp32")
        variant_rows.append((v, report.fmt_ms(this), f"{this / fp32:.2f}x" if this and fp32 else "-",
                             f"{hf / this:.2f}x" if ratios and hf and this else "-", agr.summary(),
                             tiny_agreement[v].summary() if v in tiny_agreement else "not in the tiny model"))

    florence = {}
    try:
        florence = json.load(open(os.path.join(a.model_dir, "florence.json")))
    except OSError:
        pass
    print(f"## Benchmark, {datetime.date.today().isoformat()}\n")
    print(f"- CPU: {cpu_model()} ({os.cpu_count()} logical CPUs); threads per system: {a.threads}")
    print(f"- model: {a.model_dir} ({florence.get('source', 'unknown source')}); image {os.path.basename(image)}")
    print(f"- {a.rounds} interleaved rounds; every case generates exactly its token count (min = max new tokens)")
    print(f"- variants timed: {', '.join(variant_label(v) for v in variants)}"
          + (f"; absent: {', '.join(skipped)}" if skipped else ""))
    print("- times in ms, end to end from a decoded image to the generated text; stage columns are medians; "
          "`vs engine` = peer median / engine median (same variant; > 1: the engine is faster)")
    versions = dict.fromkeys(f"{s.system}: {s.ready.get('version', '?')}" for s in systems)
    print(f"- systems: {'; '.join(versions)}")
    for c in checks + ([engine_vs_hf] if a.checkpoint else []):
        print(f"- check: {c.summary()}")
    if not ratios:
        print("\n**The onnxruntime-Python loop does not reproduce transformers: ratios withheld.**")
    print()
    print(report.latency_table(cases, rows, results, ratios))
    print()
    print(report.workers_table(systems))
    if variant_rows:
        print()
        print(report.variants_table(variant_rows))
    return 0 if ratios else 1


if __name__ == "__main__":
    sys.exit(main())
