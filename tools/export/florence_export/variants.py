"""Precision variants of an exported model directory, named as onnx-community
names them (`onnx/<graph>_fp16.onnx`).

`_fp16`: every float tensor, inputs and outputs included, in float16 (what
the onnx-community fp16 files take), converted with onnxconverter-common.
The converter leaves `Cast(to=FLOAT)` nodes (attention-mask arithmetic) in
float32, which ONNX Runtime then refuses ("Sub bound to different types"), so
those casts are retargeted to float16. Each converted graph is run against
the float32 graph it came from before it is kept.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import onnx
from onnx import TensorProto

from .onnx_export import max_rel_diff, session

GRAPHS = ("vision_encoder", "embed_tokens", "encoder_model", "decoder_model_merged")
# float16 keeps ~3 decimal digits; through a few layers of a small model the
# max difference relative to the largest output magnitude stays near 1e-3.
FP16_BOUND = 2e-2


def _retarget_casts(graph: onnx.GraphProto) -> int:
    n = 0
    for node in graph.node:
        if node.op_type == "Cast":
            for a in node.attribute:
                if a.name == "to" and a.i == TensorProto.FLOAT:
                    a.i = TensorProto.FLOAT16
                    n += 1
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                n += _retarget_casts(a.g)
    return n


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    from onnxconverter_common import float16

    with warnings.catch_warnings():
        # "the float32 number 1e-08 will be truncated to 1e-07": expected.
        warnings.simplefilter("ignore", UserWarning)
        m = float16.convert_float_to_float16(model, keep_io_types=False, disable_shape_infer=True)
    _retarget_casts(m.graph)
    return m


def _half(feed: dict) -> dict:
    return {k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in feed.items()}


def _compare(name: str, s32, s16, feed: dict, log) -> tuple[float, list]:
    want = s32.run(None, feed)
    got = s16.run(None, _half(feed))
    d = max(max_rel_diff(g.astype(np.float32), w) for g, w in zip(got, want))
    log(f"  {name}: max relative difference {d:.2e}")
    if not d <= FP16_BOUND:
        raise AssertionError(f"{name}: float16 graph differs from float32 by {d:.2e} (bound {FP16_BOUND:.0e})")
    return d, want


def write_fp16(onnx_dir: str, image_size: int, layers: int, heads: int, dh: int, log=print) -> dict:
    """Writes `<graph>_fp16.onnx` for the four graphs and checks each against float32."""
    log("writing float16 variants")
    for g in GRAPHS:
        m = to_fp16(onnx.load(os.path.join(onnx_dir, f"{g}.onnx")))
        onnx.save(m, os.path.join(onnx_dir, f"{g}_fp16.onnx"))
    s = {g: (session(os.path.join(onnx_dir, f"{g}.onnx")), session(os.path.join(onnx_dir, f"{g}_fp16.onnx")))
         for g in GRAPHS}
    rng = np.random.default_rng(3)
    figures = {}
    pv = rng.standard_normal((1, 3, image_size, image_size)).astype(np.float32)
    figures["vision_encoder"], (feats,) = _compare("vision_encoder_fp16.onnx", *s["vision_encoder"],
                                                   {"pixel_values": pv}, log)
    ids = np.array([[0, 7, 11, 13, 17, 19, 2]], dtype=np.int64)
    figures["embed_tokens"], (te,) = _compare("embed_tokens_fp16.onnx", *s["embed_tokens"], {"input_ids": ids}, log)
    embeds = np.concatenate([feats, te], axis=1)
    mask = np.ones(embeds.shape[:2], dtype=np.int64)
    figures["encoder_model"], (hidden,) = _compare("encoder_model_fp16.onnx", *s["encoder_model"],
                                                   {"attention_mask": mask, "inputs_embeds": embeds}, log)
    feed = {"encoder_attention_mask": mask, "encoder_hidden_states": hidden, "use_cache_branch": np.array([False]),
            "inputs_embeds": te[:, :1]}
    for i in range(layers):
        for kind in ("decoder", "encoder"):
            for kv in ("key", "value"):
                feed[f"past_key_values.{i}.{kind}.{kv}"] = np.zeros((1, heads, 0, dh), np.float32)
    worst, outs = _compare("decoder_model_merged_fp16.onnx step 0", *s["decoder_model_merged"], feed, log)
    names = [o.name for o in s["decoder_model_merged"][0].get_outputs()]
    enc_kv = {n: outs[j] for j, n in enumerate(names) if ".encoder." in n}
    for step in (1, 2):
        feed["use_cache_branch"] = np.array([True])
        for j, n in enumerate(names[1:], start=1):
            key = n.replace("present", "past_key_values")
            feed[key] = enc_kv[n] if ".encoder." in n else outs[j]
        feed["inputs_embeds"] = te[:, step:step + 1]
        d, outs = _compare(f"decoder_model_merged_fp16.onnx step {step} (cache)", *s["decoder_model_merged"],
                           feed, log)
        worst = max(worst, d)
    figures["decoder_model_merged"] = worst
    return figures
