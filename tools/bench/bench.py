"""The benchmark driver behind scripts/bench.sh: the engine (`florenced bench`),
a plain onnxruntime-Python loop over the same graphs and transformers, timed in
one run, interleaved (A B C A B C ...), on the same image and thread count
(the engine's default, its process pool, unless --threads is given: the peers
get as many threads as the engine's runs use); then `florenced run`'s cold
start, and, with --quality-model-dir, the quality table (quality.py) of that
model's configurations; prints markdown tables on stdout, with one `target:`
line per target of issues #10 and #21 the run measures, progress on stderr.

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
import time
from dataclasses import dataclass

import issue21_targets
import quality
import report
from agreement import Agreement, Check
from configs import DEFAULT_VARIANTS, EIGHT_BIT, Config, native_size, present
from workers import Worker

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SIZES = "768,384"


@dataclass(frozen=True)
class Case:
    id: str
    label: str
    task: str
    tokens: int
    beams: int
    # A task run first on the same image, untimed: the timed request is then a
    # second task on that image, which the engine answers from the kept vision
    # features (florenced's /v1/analyze). Engine only: the peers keep nothing.
    prime: str | None = None

    def request(self, image: str) -> dict:
        # min = max: every system generates exactly `tokens` tokens.
        req = {"image": image, "task": self.task, "max_new_tokens": self.tokens, "min_new_tokens": self.tokens,
               "num_beams": self.beams}
        return {**req, "reuse_vision": True} if self.prime else req

    def prime_request(self, image: str) -> dict:
        return {"image": image, "task": self.prime, "max_new_tokens": 2}


CASES = (
    Case("caption-greedy", "`<CAPTION>` greedy, 20 tokens", "<CAPTION>", 20, 1),
    Case("caption-beam3", "`<CAPTION>` 3 beams, 20 tokens", "<CAPTION>", 20, 3),
    Case("mdc-greedy", "`<MORE_DETAILED_CAPTION>` greedy, 100 tokens", "<MORE_DETAILED_CAPTION>", 100, 1),
    Case("caption-second-task", "`<CAPTION>` greedy, 20 tokens, second task on the image (after `<OD>`)",
         "<CAPTION>", 20, 1, prime="<OD>"),
)
ENGINE, ORT, HF = "engine", "onnxruntime-Python loop", "transformers"


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


class System(Worker):
    def __init__(self, system: str, config: Config, argv: list[str], log_dir: str):
        self.system, self.config = system, config
        self.variant, self.key = config.label, f"{system} {config.label}"
        log(f"starting {self.key}")
        super().__init__(self.key, argv, log_dir)
        self.first_run_ms = None

    def supports(self, case: Case) -> bool:
        if case.prime:
            return self.system == ENGINE
        return case.beams == 1 or self.system != ORT


def size_args(model_dir: str, config: Config) -> list[str]:
    return [] if config.size == native_size(model_dir) else ["--image-size", str(config.size)]


def engine_argv(a, model_dir: str, config: Config) -> list[str]:
    threads = [] if a.threads is None else ["--threads", str(a.threads)]
    return [a.florenced, "bench", "--model-dir", model_dir, "--variant", config.variant, *threads,
            *size_args(model_dir, config)]


def ort_argv(a, model_dir: str, config: Config) -> list[str]:
    return [a.ort_python, os.path.join(HERE, "ort_peer.py"), "--model-dir", model_dir, "--variant", config.variant,
            "--threads", str(a.peer_threads), *size_args(model_dir, config)]


def engine_threads(a, log_dir: str) -> tuple[int, str]:
    """The intra-op threads the engine's runs get with these options and what
    pool they are (`process`, `per graph`), as `florenced bench` reports them
    (the engine is the one place that decides its default); on the tiny model,
    which loads in a moment."""
    tiny = tiny_dir(a)
    w = System(ENGINE, Config("", native_size(tiny)), engine_argv(a, tiny, Config("", native_size(tiny))), log_dir)
    w.close()
    return w.ready["threads"], w.ready["thread_pool"]


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


def tiny_checks(a, log_dir: str, configs: list[Config]) -> tuple[Check, dict]:
    """The onnxruntime loop against transformers' recorded ids on the tiny model, and
    each configuration's engine ids against the fp32 engine's at the tiny model's
    own size there (its configurations present in `a.tiny_model`)."""
    refs = json.load(open(os.path.join(a.fixtures, "references.json")))
    tiny = os.path.normpath(os.path.join(a.fixtures, refs["model_dir"]))
    cases = fixture_requests(a.fixtures, a.fixture_images.split(",") if a.fixture_images else None)
    check = Check("onnxruntime loop vs transformers (tiny model, recorded references, greedy)")
    w = System(ORT, Config("", native_size(tiny)), ort_argv(a, tiny, Config("", native_size(tiny))), log_dir)
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
    model = a.tiny_model or tiny
    base_config = Config("", native_size(model))
    todo = [c for c in configs if c != base_config and present(model, c.variant)]
    if todo:
        fp32 = System(ENGINE, base_config, engine_argv(a, model, base_config), log_dir)
        try:
            base = [fp32.ask(req)["ids"] for _, req, _ in cases]
        finally:
            fp32.close()
        for c in todo:
            w = System(ENGINE, c, engine_argv(a, model, c), log_dir)
            agr = Agreement()
            try:
                for (_, req, _), want in zip(cases, base):
                    agr.add(w.ask(req)["ids"], want)
            finally:
                w.close()
            agreements[(c.variant, c.size)] = agr
            log(f"tiny model {c.label} vs {base_config.label}: {agr.summary()}")
    return check, agreements


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


class Ballast:
    """Memory touched before the timed workers start, held until the end of the run.

    On a virtual machine whose guest reports freed memory to its host (virtio
    free page reporting), the worker started first ran 10-25 % slower than the
    same worker started later, in every round (base model, 2 threads, per
    token 21-31 ms against 16-18 ms), whichever system it was; with this much
    memory taken first, four workers ran within 3 % of each other. So no
    system pays for coming first."""

    def __init__(self, gib: int):
        code = (f"import sys\nb = bytearray({gib} << 30)\nfor i in range(0, len(b), 4096):\n    b[i] = 1\n"
                "print('ready', flush=True)\nsys.stdin.read()\n")
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the {gib} GiB memory ballast did not start")

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def run_group(systems: list[System], cases: list[Case], image: str, rounds: int, label: str, results: dict) -> None:
    """`rounds` interleaved rounds (A B C A B C ...) of `cases` over `systems`."""
    for s in systems:  # ONNX Runtime's and torch's first-run costs, kept out of the rounds
        if s.first_run_ms is None:
            s.first_run_ms = s.ask(CASES[0].request(image))["timings"]["total_ms"]
    for r in range(rounds):
        for case in cases:
            for s in systems:
                if s.supports(case):
                    if case.prime:
                        s.ask(case.prime_request(image))
                    results.setdefault((label, case.id, s.key), []).append(s.ask(case.request(image)))
        log(f"{label}: round {r + 1}/{rounds} done")


def cold_start_ms(a, config: Config, case: Case, image: str, log_dir: str) -> float:
    """`florenced run --verbose` on one image, as a user starts it: from process start
    to its JSON line, in ms. The graph cache is in place: a first, untimed run of the
    same command writes it, into a directory of this run's own (so no other run's
    entries are measured)."""
    threads = [] if a.threads is None else ["--threads", str(a.threads)]
    argv = [a.florenced, "run", "--verbose", "--model-dir", a.model_dir, "--variant", config.variant, *threads,
            *size_args(a.model_dir, config), "--task", case.task, "--max-new-tokens", str(case.tokens),
            "--min-new-tokens", str(case.tokens), "--num-beams", str(case.beams), image]
    env = {**os.environ, "FLORENCE_GRAPH_CACHE": os.path.join(log_dir, "cold-start-graph-cache")}
    with open(os.path.join(log_dir, "cold-start.log"), "w") as err:
        for timed in (False, True):
            t = time.perf_counter()
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
            line = proc.stdout.readline()
            ms = (time.perf_counter() - t) * 1e3
            proc.stdout.read()
            if proc.wait() != 0 or not line:
                raise RuntimeError(f"bench: {' '.join(argv)} failed ({proc.returncode}); see {err.name}")
            out = json.loads(line)
            if out["token_count"] != case.tokens:
                raise RuntimeError(f"bench: the cold-start run generated {out['token_count']} tokens, not {case.tokens}")
            log(f"cold start ({'timed' if timed else 'writing the graph cache'}): {ms:.0f} ms to the JSON line")
    return ms



def issue21_lines(a, main_label, engine_key, hf_key, runs, med, configs, cold_ms, quality_run) -> list[str]:
    """Issue #21's targets, each with its figure from this run (issue21_targets.py)."""
    greedy = "caption-greedy"
    size = issue21_targets.VISION_SIZE
    fp32 = Config("", size)

    def fp32_vision(group: str) -> float | None:
        """fp32's vision at 768: when it is the reference, its engine runs interleaved in
        every group, and the same minutes are the fairest comparison; else its own group's."""
        if fp32.label == main_label:
            return report.stage_medians(runs(group, greedy, engine_key)).get("vision_ms")
        return report.stage_medians(runs(fp32.label, greedy, f"{ENGINE} {fp32.label}")).get("vision_ms")

    best, best_fp32 = None, fp32_vision(fp32.label)
    for c in configs:
        if c.variant in EIGHT_BIT and c.size == size:
            v = report.stage_medians(runs(c.label, greedy, f"{ENGINE} {c.label}")).get("vision_ms")
            f = fp32_vision(c.label)
            if v is not None and f and (best is None or v / f < best[1] / best_fp32):
                best, best_fp32 = (c.variant, v), f
    price: issue21_targets.QualityLoss | str = "no quality run (--no-quality)"
    if best and quality_run:
        ref = quality_run.rows[0][0]
        loss = quality_run.worst_loss(best[0], ref.size)
        price = issue21_targets.QualityLoss(f"{best[0]} {ref.size}", ref.label, *loss) if loss \
            else f"no figures of {best[0]} {ref.size} to compare in the quality run"
    this = med(main_label, greedy, engine_key)
    loop = med(main_label, greedy, f"{ORT} {main_label}")
    hf = med(main_label, greedy, hf_key)
    return [
        issue21_targets.integer_vision(best_fp32, best, price),
        issue21_targets.against_loop(main_label, a.peer_threads, loop / this if loop and this else None),
        issue21_targets.against_transformers(main_label, a.peer_threads, hf / this if hf and this else None),
        issue21_targets.cold_start(main_label, cold_ms, this),
    ]


def target_lines(main_label, engine_key, hf_key, runs, med, configs, native, engine) -> list[str]:
    """Issue #10's targets for the reference configuration, each with its figure from this run."""
    lines = []
    greedy = "caption-greedy"
    this = med(main_label, greedy, engine_key)
    loop = med(main_label, greedy, f"{ORT} {main_label}")
    hf = med(main_label, greedy, hf_key)
    if this and loop:
        lines.append(f"{main_label} `<CAPTION>` greedy at least 1.2x faster than the onnxruntime loop: "
                     f"{loop / this:.2f}x {report.verdict(loop / this >= 1.2)}")
    if this and hf:
        lines.append(f"{main_label} `<CAPTION>` greedy at least 1.6x faster than transformers: "
                     f"{hf / this:.2f}x {report.verdict(hf / this >= 1.6)}")
    per_token = report.stage_medians(runs(main_label, greedy, engine_key)).get("per_token_ms")
    if per_token:
        lines.append(f"{main_label} decoder at most 15 ms per token: {per_token:.1f} ms {report.verdict(per_token <= 15)}")
    quantised = []
    for c in configs:
        if c.variant in EIGHT_BIT and c.size == native:
            t = report.stage_medians(runs(c.label, greedy, f"{ENGINE} {c.label}")).get("per_token_ms")
            if t:
                quantised.append(f"{c.variant} {t:.1f} ms {report.verdict(t <= 10)}")
    if quantised:
        lines.append(f"8-bit decoder at most 10 ms per token: {', '.join(quantised)}")
    if engine.peak_rss_kb:
        gb = engine.peak_rss_kb * 1024 / 1e9
        lines.append(f"peak RSS of the loaded {main_label} engine (after every case) at most 1.3 GB: {gb:.2f} GB "
                     f"{report.verdict(gb <= 1.3)}")
    second = runs(main_label, "caption-second-task", engine_key)
    if second and this:
        st = report.stage_medians(second)
        reused = sum(1 for r in second if r["timings"].get("vision_cached"))
        lines.append(f"a second task on the same image costs no vision pass: `<CAPTION>` after `<OD>` "
                     f"{report.fmt_ms(med(main_label, 'caption-second-task', engine_key))} ms (vision "
                     f"{report.fmt_ms(st.get('vision_ms'))} ms, features reused in {reused}/{len(second)} runs) "
                     f"against {report.fmt_ms(this)} ms with its own vision pass {report.verdict(reused == len(second))}")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--florenced", required=True, help="the florenced binary (release build)")
    ap.add_argument("--model-dir", required=True, help="the model to time")
    ap.add_argument("--checkpoint", help="its PyTorch checkpoint (for the transformers peer); none: no transformers")
    ap.add_argument("--ort-python", required=True, help="python with onnxruntime (tools/bench/requirements-ort.txt)")
    ap.add_argument("--hf-python", help="python with transformers (tools/export/requirements.txt)")
    ap.add_argument("--fixtures", required=True, help="tests/fixtures (references.json, images, tiny model)")
    ap.add_argument("--fixture-images", help="comma-separated fixture image names for the tiny-model checks [all]")
    ap.add_argument("--tiny-model", help="the tiny model with its variants, for their agreement on the fixture "
                                         "cases [the fixtures' own]")
    ap.add_argument("--image", required=True)
    ap.add_argument("--threads", type=int,
                    help="intra-op threads per graph for every system [the engine's default, its process pool of "
                         "one thread per physical core; the peers as many]")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--variants", default=DEFAULT_VARIANTS,
                    help=f"comma-separated file suffixes, fp32 for none; absent ones are skipped [{DEFAULT_VARIANTS}]")
    ap.add_argument("--image-sizes", default=DEFAULT_SIZES,
                    help=f"input sizes each variant is timed at; the model's own is the reference [{DEFAULT_SIZES}]")
    ap.add_argument("--cases", default=",".join(c.id for c in CASES), help="the cases timed for fp32 at the "
                                                                           "model's own size")
    ap.add_argument("--variant-cases", default="caption-greedy", help="the cases timed for the other configurations")
    ap.add_argument("--log-dir", help="workers' stderr logs [a new temporary directory]")
    ap.add_argument("--ballast-gib", type=int, default=3,
                    help="GiB of memory touched before the timed workers start and held until the end (see Ballast); "
                         "0: none [3]")
    ap.add_argument("--quality-model-dir", help="score this model's configurations (the tiny model's) after the "
                                                "timed groups and print the quality table too [no quality part]")
    ap.add_argument("--quality-image-sizes", default="384,768", help="the quality part's input sizes [384,768]")
    ap.add_argument("--scenes", type=int, default=48, help="the quality part's held-out scenes [48]")
    ap.add_argument("--seed", type=int, help="their seed [quality.py's]")
    ap.add_argument("--hailo-standin", help="libflorence_hailo_standin.so: the quality part's Hailo split row")
    ap.add_argument("--hailo-model-dir", help="a model directory with the split [--quality-model-dir]")
    a = ap.parse_args()

    log_dir = a.log_dir or tempfile.mkdtemp(prefix="florence-bench-")
    os.makedirs(log_dir, exist_ok=True)
    log(f"worker logs in {log_dir}")
    native = native_size(a.model_dir)
    wanted_variants = ["" if v.strip() in ("fp32", "") else v.strip() for v in a.variants.split(",")]
    sizes = list(dict.fromkeys([native] + [int(s) for s in a.image_sizes.split(",") if s.strip()]))
    wanted = [Config(v, s) for v in dict.fromkeys([""] + wanted_variants) for s in sizes]
    configs = [c for c in wanted if present(a.model_dir, c.variant)]
    skipped = sorted({c.variant or "fp32" for c in wanted if c not in configs})
    reference = Config("", native)
    if reference not in configs:
        log(f"{a.model_dir} has no float32 graphs")
        return 2
    cases = [c for c in CASES if c.id in a.cases.split(",")]
    variant_cases = [c for c in CASES if c.id in a.variant_cases.split(",")]
    image = os.path.abspath(a.image)
    greedy_case = next((c for c in cases if c.id == "caption-greedy"), None)

    a.peer_threads, a.thread_pool = engine_threads(a, log_dir)
    log(f"engine: {a.peer_threads} threads ({a.thread_pool} pool); peers: {a.peer_threads} threads")
    tiny_check, tiny_agreement = tiny_checks(a, log_dir, wanted)

    # Memory allows a few loaded models at a time, not one per configuration: the
    # float32 engine and transformers stay loaded and run in every group, so each
    # configuration's ratios are taken against them in the same minutes.
    results: dict[tuple[str, str, str], list[dict]] = {}
    all_systems: list[System] = []
    anchors: list[System] = []
    main_label = reference.label
    ballast = Ballast(a.ballast_gib) if a.ballast_gib > 0 else None
    try:
        anchors.append(System(ENGINE, reference, engine_argv(a, a.model_dir, reference), log_dir))
        if a.checkpoint:
            anchors.append(System(HF, reference, [a.hf_python, os.path.join(HERE, "hf_peer.py"), "--checkpoint",
                                                  a.checkpoint, "--model-dir", a.model_dir, "--threads",
                                                  str(a.peer_threads)], log_dir))
        all_systems += anchors
        for config in configs:
            group = [System(ENGINE, config, engine_argv(a, a.model_dir, config), log_dir)] if config != reference \
                else []
            group.append(System(ORT, config, ort_argv(a, a.model_dir, config), log_dir))
            all_systems += group
            try:
                run_group(anchors[:1] + group + anchors[1:], cases if config == reference else variant_cases,
                          image, a.rounds, config.label, results)
            finally:
                for s in group:
                    s.close()
        # Cold start after the timed groups, with no other model loaded (the ballast still held, as for them).
        for s in anchors:
            s.close()
        cold_ms = cold_start_ms(a, reference, greedy_case, image, log_dir) if greedy_case else None
    finally:
        for s in anchors:
            s.close()
        if ballast:
            ballast.close()

    quality_run = None
    if a.quality_model_dir:
        settings = quality.Settings(a.florenced, a.quality_model_dir, variants=a.variants,
                                    image_sizes=a.quality_image_sizes, scenes=a.scenes, threads=a.peer_threads,
                                    hailo_standin=a.hailo_standin, hailo_model_dir=a.hailo_model_dir,
                                    log_dir=os.path.join(log_dir, "quality"))
        if a.seed is not None:
            settings.seed = a.seed
        quality_run = quality.measure(settings)

    # Is the onnxruntime loop right on this model too? (Same ids as transformers greedy.)
    checks = [tiny_check]
    engine_vs_hf = Check("engine vs transformers (this model, all cases)")
    hf_key, engine_key = f"{HF} {main_label}", f"{ENGINE} {main_label}"
    if a.checkpoint:
        base_check = Check("onnxruntime loop vs transformers (this model, greedy)")
        for case in (c for c in cases if not c.prime):
            hf = results[(main_label, case.id, hf_key)][0]
            if case.beams == 1:
                base_check.add(case.id, results[(main_label, case.id, f"{ORT} {main_label}")][0]["ids"], hf["ids"],
                               hf.get("margins"))
            engine_vs_hf.add(case.id, results[(main_label, case.id, engine_key)][0]["ids"], hf["ids"],
                             hf.get("margins") if case.beams == 1 else None)
        checks.append(base_check)
        log(base_check.summary())
    ratios = all(c.ok for c in checks)

    # The latency table: every system of the reference group, each other configuration's engine and loop.
    rows = [(main_label, ENGINE, (main_label, engine_key), (main_label, engine_key)),
            (main_label, ORT, (main_label, f"{ORT} {main_label}"), (main_label, engine_key))]
    if a.checkpoint:
        rows.append((main_label, HF, (main_label, hf_key), (main_label, engine_key)))
    for config in configs:
        if config != reference:
            own = (config.label, f"{ENGINE} {config.label}")
            rows += [(config.label, ENGINE, own, own), (config.label, ORT, (config.label, f"{ORT} {config.label}"), own)]

    def runs(group: str, case: str, key: str) -> list[dict]:
        return results.get((group, case, key)) or []

    def med(group: str, case: str, key: str) -> float | None:
        r = runs(group, case, key)
        return report.median([x["timings"]["total_ms"] for x in r]) if r else None

    config_rows = []
    fastest = None
    greedy = "caption-greedy"
    for config in configs:
        g = config.label
        this_key = f"{ENGINE} {g}"
        this = med(g, greedy, this_key)
        fp32 = med(g, greedy, engine_key)
        hf = med(g, greedy, hf_key)
        loop = med(g, greedy, f"{ORT} {g}")
        agr = Agreement()
        for case in (cases if config == reference else variant_cases):
            got = runs(g, case.id, this_key)
            want = runs(main_label, case.id, engine_key)
            if got and want:
                agr.add(got[0]["ids"], want[0]["ids"])
        st = report.stage_medians(runs(g, greedy, this_key)) if this else {}
        tiny = tiny_agreement.get((config.variant, config.size))
        ratio_hf = hf / this if ratios and hf and this else None
        if ratio_hf and (fastest is None or ratio_hf > fastest[1]):
            fastest = (config, ratio_hf, this, hf)
        config_rows.append((g, report.fmt_ms(this),
                            report.fmt_ms(st.get("vision_ms")), report.fmt_ms(st.get("per_token_ms")),
                            report.fmt_ms(fp32), f"{this / fp32:.2f}x" if this and fp32 else "-",
                            f"{ratio_hf:.2f}x" if ratio_hf else "-",
                            f"{loop / this:.2f}x" if ratios and loop and this else "-",
                            "reference" if config == reference else agr.summary(),
                            tiny.summary() if tiny else ("reference" if config.variant == "" and
                                                         config.size == native_size(a.tiny_model or tiny_dir(a))
                                                         else "-")))

    florence = {}
    try:
        florence = json.load(open(os.path.join(a.model_dir, "florence.json")))
    except OSError:
        pass
    print(f"## Benchmark, {datetime.date.today().isoformat()}\n")
    if a.thread_pool == "process":
        engine_pool = (f"its process pool of {a.peer_threads} threads "
                       f"({'--threads 0' if a.threads is not None else 'the default'})")
    else:
        engine_pool = f"{a.peer_threads} threads per graph (--threads {a.threads})"
    print(f"- CPU: {cpu_model()} ({os.cpu_count()} logical CPUs); engine: {engine_pool}; peers (onnxruntime "
          f"loop, transformers): {a.peer_threads} threads")
    print(f"- model: {a.model_dir} ({florence.get('source', 'unknown source')}); image {os.path.basename(image)}")
    print(f"- {a.rounds} interleaved rounds per group; every case generates exactly its token count "
          "(min = max new tokens)"
          + (f"; a {a.ballast_gib} GiB memory ballast taken before the workers started" if a.ballast_gib else ""))
    print(f"- configurations (variant, input size): {', '.join(c.label for c in configs)}"
          + (f"; variants absent: {', '.join(skipped)}" if skipped else ""))
    print(f"- groups: {main_label} with every case; then each other configuration with "
          f"{', '.join(c.id for c in variant_cases)}, its engine and onnxruntime loop interleaved with the "
          f"{main_label} engine{' and transformers' if a.checkpoint else ''}, which stay loaded: every ratio is "
          "taken within one group")
    print("- times in ms, end to end from a decoded image to the generated text; stage columns are medians; "
          "`vs engine` = peer median / engine median (same configuration; > 1: the engine is faster)")
    versions = dict.fromkeys(f"{s.system}: {s.ready.get('version', '?')}" for s in all_systems)
    print(f"- systems: {'; '.join(versions)}")
    for c in checks + ([engine_vs_hf] if a.checkpoint else []):
        print(f"- check: {c.summary()}")
    if fastest:
        config, ratio, this, hf = fastest
        print(f"- fastest configuration: {config.label}, `<CAPTION>` greedy {report.fmt_ms(this)} ms; transformers "
              f"{main_label} greedy {report.fmt_ms(hf)} ms in the same group: {ratio:.2f}x "
              f"({'meets' if ratio >= 4 else 'misses'} the 4x target)")
    if ratios:
        for line in target_lines(main_label, engine_key, hf_key, runs, med, configs, native, anchors[0]):
            print(f"- target: {line}")
        for line in issue21_lines(a, main_label, engine_key, hf_key, runs, med, configs, cold_ms, quality_run):
            print(f"- target: {line}")
    if not ratios:
        print("\n**The onnxruntime-Python loop does not reproduce transformers: ratios withheld.**")
    print()
    print(report.latency_table(cases + [c for c in variant_cases if c not in cases], rows, results, ratios))
    print()
    print(report.workers_table(all_systems))
    print()
    print(report.configs_table(config_rows, main_label))
    if quality_run:
        print()
        print(quality_run.markdown())
    return 0 if ratios else 1


def tiny_dir(a) -> str:
    refs = json.load(open(os.path.join(a.fixtures, "references.json")))
    return os.path.normpath(os.path.join(a.fixtures, refs["model_dir"]))


if __name__ == "__main__":
    sys.exit(main())
