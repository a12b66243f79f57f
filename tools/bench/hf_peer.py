"""Benchmark worker: transformers' Florence2ForConditionalGeneration.generate
(PyTorch, CPU, float32) behind the JSON-lines protocol (protocol.py).

    python tools/bench/hf_peer.py --checkpoint DIR --model-dir DIR [--threads 2]

Runs in the exporter's environment (tools/export/requirements.txt). The
checkpoint is the one export.py --save-checkpoint wrote next to the model
directory; the processor is built as the fixture references are recorded
(PIL image processor). Stage times come from forward hooks: vision tower to
projector, text encoder, and each logits projection (one per decoding step).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
from PIL import Image

import protocol

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "export"))

from florence_export import references, tiny  # noqa: E402


class Stamps:
    """Wall-clock marks left by forward hooks during one generate call."""

    def __init__(self, model):
        self.marks: dict[str, float] = {}
        self.steps: list[float] = []
        m = model.model
        m.vision_tower.register_forward_pre_hook(lambda *_: self._mark("vision_start"))
        m.multi_modal_projector.register_forward_hook(lambda *_: self._mark("vision_end"))
        m.language_model.encoder.register_forward_hook(lambda *_: self._mark("encoder_end"))
        model.lm_head.register_forward_hook(lambda *_: self.steps.append(time.perf_counter()))

    def _mark(self, name: str) -> None:
        self.marks.setdefault(name, time.perf_counter())

    def reset(self) -> None:
        self.marks.clear()
        self.steps.clear()


def load(args):
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    model, _, hf_tok = tiny.load_checkpoint(args.checkpoint)
    pre = json.load(open(os.path.join(args.model_dir, "preprocessor_config.json")))
    gen = json.load(open(os.path.join(args.model_dir, "generation_config.json")))
    post = json.load(open(os.path.join(HERE, "..", "..", "gst-florence", "data", "florence2-post-processor-config.json")))
    processor = references.make_processor(hf_tok, pre["size"]["height"], pre["image_mean"], pre["image_std"], post)
    # The model finds the image's place in the prompt by the tokenizer's `<image>` id;
    # checkpoints written with another vocabulary size may carry another id.
    model.config.image_token_id = model.model.config.image_token_id = processor.image_token_id
    return model, processor, gen, Stamps(model)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--model-dir", required=True, help="for its generation and preprocessor configs")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    images: dict[str, Image.Image] = {}

    def run(system, req: dict) -> dict:
        model, processor, gen, stamps = system
        if req.get("text") or req.get("region") or req.get("prompt_ids"):
            raise ValueError("the transformers peer takes tasks without inputs only")
        path = req["image"]
        if path not in images:  # decoding the file is not part of the latency
            images[path] = Image.open(path)
            images[path].load()
        cfg = {k: v for k, v in gen.items() if not k.startswith("_") and k != "transformers_version"}
        cfg.update(num_beams=req.get("num_beams", 1), do_sample=False, max_new_tokens=req.get("max_new_tokens", 1024),
                   min_new_tokens=req.get("min_new_tokens") or None, output_scores=True,
                   return_dict_in_generate=True)
        config = references.GenerationConfig(**cfg)
        stamps.reset()
        t0 = time.perf_counter()
        enc = processor(text=req["task"], images=images[path], return_tensors="pt")
        t1 = time.perf_counter()
        with torch.inference_mode():
            res = model.generate(input_ids=enc["input_ids"], pixel_values=enc["pixel_values"],
                                 attention_mask=enc["attention_mask"], generation_config=config)
        t2 = time.perf_counter()
        seq = res.sequences[0].tolist()
        text = processor.batch_decode([seq], skip_special_tokens=False)[0]
        t3 = time.perf_counter()
        m, steps = stamps.marks, stamps.steps
        n = len(seq) - 1
        out = {
            "ids": seq,
            "token_count": n,
            "text": text,
            "timings": {
                "preprocess_ms": protocol.ms(t0, t1),
                "vision_ms": protocol.ms(m["vision_start"], m["vision_end"]),
                "encoder_ms": protocol.ms(m["vision_end"], m["encoder_end"]),
                "first_token_ms": protocol.ms(m["encoder_end"], steps[0]),
                "per_token_ms": protocol.ms(steps[0], steps[-1]) / (len(steps) - 1) if len(steps) > 1 else 0.0,
                "decode_ms": protocol.ms(m["encoder_end"], t2),
                "postprocess_ms": protocol.ms(t2, t3),
                "total_ms": protocol.ms(t0, t3),
            },
        }
        if config.num_beams == 1:
            out["margins"] = references._margins(res.scores)
        return out

    import transformers

    protocol.serve(lambda: load(args), run, f"transformers {transformers.__version__}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
