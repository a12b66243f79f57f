"""Florence-2 checkpoint -> model directory in the onnx-community layout.

Convert a Hugging Face checkpoint (transformers' Florence2ForConditionalGeneration):

    python tools/export/export.py --checkpoint DIR --out models/florence-2-base

Build the project's test model and its reference fixtures (trains the tiny
model first unless --tiny-checkpoint points at an earlier training run):

    python tools/export/export.py --tiny --out tests/fixtures/tiny-florence2 \
        --references tests/fixtures --seed 0

A Florence-2-base-shaped model with random weights, for benchmarks (scripts/bench.sh),
with its PyTorch checkpoint for the transformers peer:

    python tools/export/export.py --random-base --out DIR --save-checkpoint DIR/pytorch

Every graph is checked against the PyTorch module it came from before it is
kept; the process fails if any difference exceeds the bound it prints.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from florence_export import model_dir, references, tiny, variants  # noqa: E402

# The one copy, built into the engine too (gst-florence/data/README.md).
DEFAULT_POST_PROCESSOR_CONFIG = os.path.join(
    HERE, "..", "..", "gst-florence", "data", "florence2-post-processor-config.json"
)
VQA_TEMPLATE = "<VQA>{question}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="Hugging Face Florence-2 checkpoint directory (transformers v5 layout)")
    src.add_argument("--tiny", action="store_true", help="build (or load) the project's tiny test model")
    src.add_argument("--random-base", action="store_true",
                     help="a Florence-2-base-shaped model with random weights (for benchmarks only)")
    ap.add_argument("--tiny-checkpoint", help="with --tiny: a directory written by train_tiny.py, instead of training")
    ap.add_argument("--train-steps", type=int, default=tiny.DEFAULT_STEPS)
    ap.add_argument("--out", required=True, help="model directory to write")
    ap.add_argument("--references", help="also write fixture images and references.json into this directory")
    ap.add_argument("--save-checkpoint", metavar="DIR",
                    help="with --tiny or --random-base: also save the PyTorch model and tokenizers there "
                         "(what the benchmark's transformers peer loads; tiny.load_checkpoint reads it)")
    ap.add_argument("--post-processor-config", default=DEFAULT_POST_PROCESSOR_CONFIG)
    ap.add_argument("--hailo-image-size", type=int, default=384)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", default="fp16",
                    help="comma-separated precision variants to write next to the float32 graphs "
                         f"(onnx/<graph>_<name>.onnx; some of {','.join(variants.BOUNDS)}), or '' for none; "
                         "add_variants.py adds them to an existing model directory")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    t0 = time.time()
    if args.tiny:
        if args.tiny_checkpoint:
            model, base_tok, hf_tok = tiny.load_checkpoint(args.tiny_checkpoint)
        else:
            ckpt = os.path.join(HERE, ".work", f"tiny-seed{args.seed}")
            model, base_tok, hf_tok = tiny.build_and_train(args.seed, args.train_steps, tiny.DEFAULT_BATCH)
            tiny.save_checkpoint(model, base_tok, hf_tok, ckpt)
        tokenizer_json = base_tok.to_str()
        tokenizer_config = tiny.tokenizer_config(base_tok)
        image_size, mean, std = tiny.IMAGE_SIZE, tiny.MEAN, tiny.STD
    elif args.random_base:
        model, base_tok, hf_tok = tiny.random_base(args.seed)
        tokenizer_json = base_tok.to_str()
        tokenizer_config = tiny.tokenizer_config(base_tok)
        image_size, mean, std = 768, tiny.MEAN, tiny.STD
    else:
        from transformers import AutoProcessor, Florence2ForConditionalGeneration

        model = Florence2ForConditionalGeneration.from_pretrained(args.checkpoint, dtype=torch.float32).eval()
        processor = AutoProcessor.from_pretrained(args.checkpoint)
        hf_tok = processor.tokenizer
        tokenizer_json = hf_tok.backend_tokenizer.to_str()
        tokenizer_config = json.load(open(os.path.join(args.checkpoint, "tokenizer_config.json")))
        ip = processor.image_processor
        image_size = ip.size["height"]
        mean, std = ip.image_mean, ip.image_std
    model.eval()
    if args.save_checkpoint:
        if args.checkpoint:
            ap.error("--save-checkpoint: the --checkpoint source is already a checkpoint")
        tiny.save_checkpoint(model, base_tok, hf_tok, args.save_checkpoint)

    caption_ids = hf_tok("What does the image describe?")["input_ids"]
    vqa_prefix = VQA_TEMPLATE.split("{question}")[0]
    vqa_prefix_ids = [hf_tok.bos_token_id] + hf_tok(vqa_prefix, add_special_tokens=False)["input_ids"]
    figures = model_dir.export_model_dir(
        model, tokenizer_json, tokenizer_config, args.out, image_size, mean, std,
        args.hailo_image_size, caption_ids, vqa_prefix_ids,
        precisions=tuple(v for v in args.variants.split(",") if v),
    )
    florence = {
        "vqa_prompt_template": VQA_TEMPLATE,
        "exporter": "tools/export/export.py",
        "source": ("tiny (trained on synthetic images)" if args.tiny
                   else "random Florence-2-base shape" if args.random_base else os.path.abspath(args.checkpoint)),
        "seed": args.seed,
    }
    model_dir._dump(florence, os.path.join(args.out, "florence.json"))

    if args.references:
        post_cfg = json.load(open(args.post_processor_config))
        processor = references.make_processor(hf_tok, image_size, mean, std, post_cfg)
        with open(os.path.join(args.out, "generation_config.json")) as f:
            gen = json.load(f)
        hailo = {"image_size": args.hailo_image_size, "window": 32, "caption_ids": caption_ids}
        print("recording references with transformers")
        refs = references.record(model, processor, gen, args.references, args.seed, hailo)
        refs["model_dir"] = os.path.relpath(args.out, args.references)
        refs["recorded_with"] = versions()
        refs["post_processor_config"] = post_cfg
        refs["export_checks"] = figures
        refs["summary"] = references.summary(refs)
        references.write_json(refs, os.path.join(args.references, "references.json"))
        print(json.dumps(refs["summary"], indent=1))
    print(f"done in {time.time() - t0:.0f}s")


def versions() -> dict:
    import onnx
    import onnxruntime
    import PIL
    import tokenizers
    import transformers

    return {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "tokenizers": tokenizers.__version__,
        "pillow": PIL.__version__,
        "python": sys.version.split()[0],
    }


if __name__ == "__main__":
    main()
