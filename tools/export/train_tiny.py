"""Train the tiny Florence-2 and save it as a Hugging Face checkpoint (not committed).

    python tools/export/train_tiny.py --out tools/export/.work/tiny-seed0 --seed 0

export.py --tiny does the same when no --tiny-checkpoint is given; this script
exists to train once and export many times.
"""

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from florence_export import tiny  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=tiny.DEFAULT_STEPS)
    ap.add_argument("--batch", type=int, default=tiny.DEFAULT_BATCH)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ocr-steps", type=int, default=tiny.OCR_PHASE_STEPS,
                    help="steps of the OCR phase after the main training")
    ap.add_argument("--resume-main", help="a checkpoint saved after the main training (--ocr-steps 0) "
                    "with the same seed, steps and batch: run only the OCR phase on it")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    t0 = time.time()
    lines = []

    def log(msg: str) -> None:
        print(msg, flush=True)
        lines.append(msg)

    if args.resume_main:
        # Equivalent to training from scratch: the main phase is deterministic and the
        # OCR phase starts a fresh optimiser and its own seeded generator.
        model, base_tok, hf_tok = tiny.load_checkpoint(args.resume_main)
        tiny.train_ocr_phase(model, hf_tok, args.seed, args.ocr_steps, args.batch, log=log)
    else:
        model, base_tok, hf_tok = tiny.build_and_train(args.seed, args.steps, args.batch, log=log,
                                                       ocr_steps=args.ocr_steps)
    info = {"seed": args.seed, "steps": args.steps, "ocr_steps": args.ocr_steps, "batch": args.batch,
            "threads": args.threads, "resumed_from": args.resume_main,
            "seconds": round(time.time() - t0), "log": lines}
    tiny.save_checkpoint(model, base_tok, hf_tok, args.out, info)
    log(f"saved {args.out} in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
