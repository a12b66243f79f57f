"""Adds the batchable decoder to an existing model directory written by this exporter:

    python tools/export/add_batched.py --model-dir DIR

Writes onnx/decoder_cross_key_values.onnx and onnx/decoder_model_batched.onnx (see
florence_export/batched.py) from the weights of onnx/decoder_model_merged.onnx, rebuilt
in PyTorch (florence_export/merged_weights.py), so no checkpoint is needed. The
rebuilt decoder is checked against the merged graph, the new graphs against the
rebuilt decoder, and rows of a batch against the same rows alone (bit for bit);
the process fails if any check does. The precision variants already in the
directory then get their own pair (florence_export/batched_variants.py). Needs the
exporter's environment (torch).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from florence_export import batched, graphs, merged_weights, variants  # noqa: E402
from florence_export.onnx_export import ONNX_BOUND, check, session  # noqa: E402


def check_rebuild(model, model_dir: str, log=print) -> float:
    """The rebuilt decoder's first step against the merged graph's (no cache)."""
    t = model.config.text_config
    g = torch.Generator().manual_seed(6)
    enc = torch.randn(1, 19, t.d_model, generator=g)
    mask = torch.ones(1, 19, dtype=torch.int64)
    embeds = model.get_input_embeddings()(torch.tensor([[2]]))
    dh = t.d_model // t.decoder_attention_heads
    feed = {"encoder_attention_mask": mask.numpy(), "encoder_hidden_states": enc.numpy(),
            "use_cache_branch": np.array([False]), "inputs_embeds": embeds.detach().numpy()}
    for name in batched.past_names(t.decoder_layers):
        feed[name] = np.zeros((1, t.decoder_attention_heads, 0, dh), np.float32)
    got = session(os.path.join(model_dir, "onnx", batched.MERGED_DECODER + ".onnx")).run(None, feed)[0]
    with torch.no_grad():
        want = graphs.Decoder(model, with_past=False)(mask, enc, embeds)[0].numpy()
    return check("rebuilt decoder vs decoder_model_merged.onnx", got, want, ONNX_BOUND, log)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--figures", metavar="FILE", help="also write the check figures there as JSON")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    try:
        model = merged_weights.rebuild(args.model_dir)
        figures = {"rebuilt_decoder": check_rebuild(model, args.model_dir)}
        figures.update(batched.add(model, os.path.join(args.model_dir, "onnx")))
        present = [n for n, suffix in variants.SUFFIX.items()
                   if all(os.path.isfile(os.path.join(args.model_dir, "onnx", f"{g}{suffix}.onnx"))
                          for g in variants.GRAPHS)]
        figures["variants"] = variants.write_variants(args.model_dir, present, threads=args.threads)
    except (ValueError, AssertionError) as e:
        sys.exit(f"add_batched: {e}")
    if args.figures:
        with open(args.figures, "w") as f:
            json.dump(figures, f, indent=1)


if __name__ == "__main__":
    main()
