#!/usr/bin/env python3
"""Runs `florenced run` on a few recorded fixture cases and checks the result
token for token against tests/fixtures/references.json (transformers' output).

    check-run-fixtures.py [--launcher 'qemu-aarch64 -L ...'] [--case IMAGE TASK DECODING]...
                          FLORENCED [florenced args...]

The launcher prefix lets the same check run an aarch64 build under qemu-user
(scripts/cross-aarch64.sh); extra arguments (e.g. --ort-library) go to every
`florenced run`; --case picks some of CASES (scripts/deb-arm64-check.sh runs one).
Exit status 1 on any mismatch, with the case and both sides.
"""

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"

# (image, task, decoding): cases whose greedy steps all win by a margin of at
# least 0.05 in the recorded scores, so a platform's float rounding (another
# CPU's kernels in ONNX Runtime) cannot flip a token; one per task family,
# several images, plus one 3-beam case (the decoding the CLI uses by default).
CASES = [
    ("scene_1024x576", "<CAPTION>", "greedy"),
    ("gray_320x240", "<CAPTION>", "greedy"),
    ("pattern_200x300", "<CAPTION>", "greedy"),
    ("tall_37x1000", "<CAPTION>", "greedy"),
    ("scene_1024x576", "<DETAILED_CAPTION>", "greedy"),
    ("scene_640x480", "<OCR>", "greedy"),
    ("text_512x256", "<OCR>", "greedy"),
    ("scene_1024x576", "<VQA>", "greedy"),
    ("scene_300x200", "<VQA>", "greedy"),
    ("rgba_256x256", "<VQA>", "greedy"),
    ("scene_640x480", "<REGION_TO_DESCRIPTION>", "greedy"),
    ("scene_640x480", "<CAPTION>", "beam3"),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--launcher", default="", help="command prefix, e.g. qemu-aarch64 ...")
    ap.add_argument(
        "--case",
        nargs=3,
        action="append",
        metavar=("IMAGE", "TASK", "DECODING"),
        help="run only this one of the cases (repeatable)",
    )
    ap.add_argument("florenced")
    ap.add_argument("extra", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cases = [tuple(c) for c in args.case] if args.case else CASES
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        ap.error(f"not among the checked cases: {unknown}; choose from {CASES}")

    refs = json.loads((FIXTURES / "references.json").read_text())
    files = {i["name"]: FIXTURES / i["file"] for i in refs["images"]}
    by_key = {(c["image"], c["task"]): c for c in refs["cases"]}

    # One process per (task, text, decoding, max tokens): images of a group share it.
    groups: dict[tuple, list] = {}
    for image, task, decoding in cases:
        case = by_key[(image, task)]
        key = (task, case["text_input"], decoding, case["max_new_tokens"])
        groups.setdefault(key, []).append(case)

    failures = 0
    matched = 0
    for (task, text, decoding, max_new), cases in groups.items():
        cmd = shlex.split(args.launcher) + [args.florenced, "run"]
        cmd += ["--model-dir", str(FIXTURES / "tiny-florence2"), "--threads", "1"]
        cmd += ["--task", task, "--max-new-tokens", str(max_new), "--verbose"]
        cmd += ["--num-beams", "1" if decoding == "greedy" else "3"]
        if text is not None:
            cmd += ["--text", text]
        cmd += args.extra + [str(files[c["image"]]) for c in cases]
        started = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        took = time.monotonic() - started
        if proc.returncode != 0:
            print(f"FAIL {task} {decoding}: exit {proc.returncode}\n{proc.stderr}")
            failures += len(cases)
            continue
        lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
        if len(lines) != len(cases):
            print(f"FAIL {task} {decoding}: {len(lines)} results for {len(cases)} images")
            failures += len(cases)
            continue
        for case, got in zip(cases, lines):
            want = case[decoding]
            label = f"{case['image']} {task} {decoding}"
            diffs = [
                (what, g, w)
                for what, g, w in [
                    ("ids", got.get("ids"), want["ids"]),
                    ("text", got.get("raw_text"), want["text"]),
                    ("result", got.get("result"), want["parsed"]),
                ]
                if g != w
            ]
            if diffs:
                failures += 1
                for what, g, w in diffs:
                    print(f"FAIL {label}: {what}\n  got  {g!r}\n  want {w!r}")
            else:
                matched += 1
                print(f"ok   {label}: {len(want['ids'])} ids {want['text']!r}")
        print(f"     ({len(cases)} image(s) in one process: {took:.1f} s)")
    print(f"{matched} of {len(cases)} cases match")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
