"""Benchmark worker: the plain onnxruntime-Python loop (ort_loop.py) behind the
JSON-lines protocol (protocol.py).

    python tools/bench/ort_peer.py --model-dir DIR [--variant _fp16] [--threads 2] [--image-size 384]

Greedy only (`num_beams` other than 1 is refused): it is the baseline a
first port over the same graphs gives.
"""

from __future__ import annotations

import argparse

import onnxruntime as ort
from PIL import Image

import protocol
from ort_loop import OrtFlorence


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--variant", default="")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--image-size", type=int, help="square input size instead of the model's (384 or 768)")
    args = ap.parse_args()
    images: dict[str, Image.Image] = {}

    def run(model: OrtFlorence, req: dict) -> dict:
        if req.get("num_beams", 1) != 1:
            raise ValueError("the onnxruntime loop decodes greedily only")
        if req.get("text") or req.get("region"):
            raise ValueError("task inputs need prompt_ids")
        path = req["image"]
        if path not in images:  # decoding the file is not part of the latency
            images[path] = Image.open(path)
            images[path].load()
        return model.generate(images[path], req.get("prompt_ids"), req["task"],
                              req.get("max_new_tokens") or 1024, req.get("min_new_tokens") or 0)

    protocol.serve(lambda: OrtFlorence(args.model_dir, args.variant, args.threads, args.image_size), run,
                   f"onnxruntime {ort.__version__} (Python)")


if __name__ == "__main__":
    main()
