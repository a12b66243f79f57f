"""Adds precision variants to an existing model directory (onnx-community layout):

    python tools/export/add_variants.py --model-dir DIR --variants quantized,int8,qdq,q4

Each variant is checked against the float32 graphs before it is kept (the
figures are printed); variants already present are left as they are. Needs
onnx, onnxruntime, onnxconverter-common, tokenizers and Pillow, not torch: the
benchmark's venv (tools/bench/requirements-ort.txt) runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from florence_export import variants  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--variants", required=True, help=f"comma-separated, some of {','.join(variants.BOUNDS)}")
    ap.add_argument("--calibration-images", metavar="DIR",
                    help="images added to the generated ones for the static int8 (qdq) calibration")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--figures", metavar="FILE", help="also write the check figures there as JSON")
    args = ap.parse_args()
    names = [v.strip().lstrip("_") for v in args.variants.split(",") if v.strip()]
    try:
        figures = variants.write_variants(args.model_dir, names, args.calibration_images, args.threads)
    except (ValueError, AssertionError) as e:
        sys.exit(f"add_variants: {e}")
    if args.figures:
        with open(args.figures, "w") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
