"""The quality table behind `scripts/bench.sh --quality`: every configuration of
the tiny model (precision variant x input size, and the Hailo split over the
stand-in) answers every task on held-out generated scenes (quality_scenes.py),
and each task's answers are scored against the scenes' ground truth
(quality_tasks.py). Prints markdown tables on stdout (fp32 at the model's own
size is the reference; every other row shows its difference), progress on
stderr.

The engine runs as `florenced bench` (one worker per configuration, greedy
decoding); its post-processed `result` is what is scored. Each scene's first
request pays for the vision pass, the others reuse its features, as
florenced's /v1/analyze does.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
from dataclasses import dataclass, field

import configs
import quality_scenes
from configs import DEFAULT_VARIANTS, native_size, present
from quality_tasks import ACCURACY_TASKS, BOX_TASKS, TEXT_TASKS, Tally, add, worst_loss
from workers import Worker

MAX_NEW_TOKENS = 160
HAILO = "hailo"
# The HailoRT major the stand-in plays (the engine's bridge file name for it).
HAILO_BRIDGE = "libflorence_hailo_hailort5.so"


def log(msg: str) -> None:
    print(f"quality: {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Config(configs.Config):
    """The benchmark's configuration (variant at an input size), or the Hailo split."""
    backend: str = "onnx"

    @property
    def label(self) -> str:
        return f"Hailo split (stand-in) {self.size}" if self.backend == HAILO else super().label


def worker(s: Settings, config: Config, log_dir: str) -> Worker:
    model = s.model_dir
    argv = [s.florenced, "bench", "--threads", str(s.threads), "--variant", config.variant]
    env = {}
    if config.backend == HAILO:
        # The stand-in plays libhailort and the bridge; the split lives in the fixture model.
        bridges = os.path.join(log_dir, "hailo-bridges")
        os.makedirs(bridges, exist_ok=True)
        link = os.path.join(bridges, HAILO_BRIDGE)
        if not os.path.lexists(link):
            os.symlink(os.path.abspath(s.hailo_standin), link)
        env = {"FLORENCE_HAILORT_LIBRARY": os.path.abspath(s.hailo_standin), "FLORENCE_HAILO_BRIDGE_DIR": bridges}
        model = s.hailo_model_dir
        argv += ["--backend", "hailo"]
    else:
        argv += ["--backend", "onnx"]
    if config.size != native_size(model):
        argv += ["--image-size", str(config.size)]
    log(f"starting {config.label}")
    w = Worker(config.label, argv + ["--model-dir", model], log_dir, env)
    if config.backend == HAILO and w.ready.get("backend") != HAILO:
        w.close()
        raise SystemExit(f"quality: {config.label} runs captions on {w.ready.get('backend')}, not the split: "
                         f"{w.ready.get('backend_reason')}")
    return w


def answers(w: Worker, probes: list[quality_scenes.Probe]) -> dict[str, Tally]:
    tallies: dict[str, Tally] = {}
    last_image = None
    for p in probes:
        out = w.ask(p.request(MAX_NEW_TOKENS, reuse_vision=p.image == last_image))
        last_image = p.image
        add(tallies.setdefault(p.task, Tally()), p, out["result"])
    return tallies


def cell(value: float | None, ref: float | None, reference: bool) -> str:
    if value is None:
        return "-"
    if reference or ref is None:
        return f"{value:.1f}"
    return f"{value:.1f} ({value - ref:+.1f})"


def table(title: str, tasks: list[str], rows: list[tuple[Config, dict[str, Tally]]]) -> str:
    heads = [(t, col) for t in tasks for col in Tally().columns(t)]
    ref = {(t, col): v for t in tasks for col, v in rows[0][1].get(t, Tally()).columns(t).items()}
    lines = [f"### {title}", "",
             "| configuration | " + " | ".join(f"`{t}` {col}" for t, col in heads) + " |",
             "|---|" + "---:|" * len(heads)]
    for i, (config, tallies) in enumerate(rows):
        cells = []
        for t, col in heads:
            tally = tallies.get(t)
            cells.append(cell(tally.columns(t)[col], ref[(t, col)], i == 0) if tally else "-")
        lines.append(f"| {config.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dataclass
class Settings:
    """What a quality run scores: `scripts/bench.sh --quality` sets these from its
    command line, the benchmark (bench.py) from its own."""
    florenced: str
    model_dir: str
    variants: str = DEFAULT_VARIANTS
    image_sizes: str = "384,768"
    scenes: int = 48
    seed: int = quality_scenes.HELD_OUT_SEED
    threads: int = 2
    hailo_standin: str | None = None
    hailo_model_dir: str | None = None
    log_dir: str | None = None


@dataclass
class Run:
    """One quality run: each configuration's tallies per task; rows[0] is the reference."""
    settings: Settings
    absent: list[str]
    counts: dict[str, int]
    rows: list[tuple[Config, dict[str, Tally]]] = field(default_factory=list)

    def worst_loss(self, variant: str, size: int) -> tuple[str, float] | None:
        """Where `variant` at `size` (ONNX Runtime) falls furthest behind the reference
        row (quality_tasks.worst_loss); None when that configuration was not scored."""
        mine = next((t for c, t in self.rows if (c.variant, c.size, c.backend) == (variant, size, "onnx")), None)
        return None if mine is None else worst_loss(self.rows[0][1], mine)

    def markdown(self) -> str:
        s = self.settings
        lines = [f"## Quality, {datetime.date.today().isoformat()}", "",
                 (f"- model: {s.model_dir}; {s.scenes} held-out generated scenes (seed {s.seed}), greedy decoding, "
                  f"at most {MAX_NEW_TOKENS} new tokens"),
                 "- answers per task: " + ", ".join(f"`{t}` {n}" for t, n in self.counts.items()),
                 f"- configurations: {', '.join(c.label for c, _ in self.rows)}"
                 + (f"; variants absent: {', '.join(self.absent)}" if self.absent else ""),
                 ("- percentages; boxes: precision P and recall R at IoU 0.5 (label equal where the task has labels; "
                  "quads as their bounding boxes); text: exact match and character error rate (CER, lower is better); "
                  "region tasks and VQA: right answers; segmentation: mask IoU >= 0.5. "
                  f"{self.rows[0][0].label} is the reference, other rows show (difference)"), "",
                 table("Boxes", list(BOX_TASKS), self.rows), "",
                 table("Text", TEXT_TASKS, self.rows), "",
                 table("Regions, answers and masks", ACCURACY_TASKS, self.rows)]
        return "\n".join(lines)


def measure(s: Settings) -> Run:
    """Every configuration's answers on the held-out scenes, scored."""
    s.hailo_model_dir = s.hailo_model_dir or s.model_dir
    log_dir = s.log_dir or tempfile.mkdtemp(prefix="florence-quality-")
    scenes_dir = os.path.join(log_dir, "scenes")
    os.makedirs(scenes_dir, exist_ok=True)
    probes = quality_scenes.probes(s.scenes, scenes_dir, s.seed)
    log(f"{s.scenes} scenes, {len(probes)} requests per configuration; scenes and logs in {log_dir}")

    native = native_size(s.model_dir)
    sizes = list(dict.fromkeys([native] + [int(x) for x in s.image_sizes.split(",") if x.strip()]))
    variants = ["" if v.strip() in ("fp32", "") else v.strip() for v in s.variants.split(",")]
    wanted = [Config(v, size) for v in dict.fromkeys([""] + variants) for size in sizes]
    scored = [c for c in wanted if present(s.model_dir, c.variant)]
    absent = sorted({c.variant for c in wanted if c not in scored})
    if s.hailo_standin:
        scored.append(Config("", native_size(s.hailo_model_dir), HAILO))

    counts: dict[str, int] = {}
    for p in probes:
        counts[p.task] = counts.get(p.task, 0) + 1
    run = Run(s, absent, counts)
    for config in scored:
        # The split runs only <CAPTION> (florence.rs: backend_for); other tasks would run on ONNX Runtime.
        mine = [p for p in probes if p.task == "<CAPTION>"] if config.backend == HAILO else probes
        w = worker(s, config, log_dir)
        try:
            run.rows.append((config, answers(w, mine)))
        finally:
            w.close()
        log(f"{config.label} done")
    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--florenced", required=True, help="the florenced binary")
    ap.add_argument("--model-dir", required=True, help="the tiny model with its precision variants")
    ap.add_argument("--variants", default=DEFAULT_VARIANTS,
                    help=f"comma-separated file suffixes, fp32 for none; absent ones are skipped [{DEFAULT_VARIANTS}]")
    ap.add_argument("--image-sizes", default="384,768", help="input sizes; the model's own is the reference [384,768]")
    ap.add_argument("--scenes", type=int, default=48, help="held-out scenes [48]")
    ap.add_argument("--seed", type=int, default=quality_scenes.HELD_OUT_SEED,
                    help=f"their seed [{quality_scenes.HELD_OUT_SEED}: see quality_scenes.py]")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--hailo-standin", help="libflorence_hailo_standin.so: adds the Hailo split's row (<CAPTION>)")
    ap.add_argument("--hailo-model-dir", help="a model directory with the split (hailo/) [--model-dir]")
    ap.add_argument("--log-dir", help="workers' stderr logs and the scenes [a new temporary directory]")
    print(measure(Settings(**vars(ap.parse_args()))).markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
