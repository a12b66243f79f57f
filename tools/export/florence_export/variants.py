"""Precision variants of an exported model directory, named as onnx-community
names them (`onnx/<graph><suffix>.onnx`): `_fp16`, `_quantized`, `_int8`,
`_uint8`, `_q4`, `_q4f16`, `_bnb4` (quantize.py says how each is made), and
this project's two, each an int8 vision encoder of its own with the text
graphs in the form that measured fastest on a CPU (TEXT_FOR_OWN_VISION):
`_int8mm` (its matrix products in int8, quantised at run time: the fastest
and closest to float32) and `_qdq` (statically quantised, QDQ).

`_fp16`: every float tensor, inputs and outputs included, in float16 (what
the onnx-community fp16 files take), converted with onnxconverter-common.
The converter leaves `Cast(to=FLOAT)` nodes (attention-mask arithmetic) in
float32, which ONNX Runtime then refuses ("Sub bound to different types"), so
those casts are retargeted to float16.

Each variant is written under temporary names, checked against the float32
graphs it came from (variant_check.py: per-graph differences, and the token
agreement of the whole variant pipeline along float32's greedy tokens), and
only then given its real names; a variant whose four files exist is complete
and is not written again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import warnings
from dataclasses import dataclass

import onnx
from onnx import TensorProto
from PIL import Image

from . import batched_variants, quantize, variant_check
from .variant_check import GRAPHS


@dataclass(frozen=True)
class Bounds:
    """What a variant must meet against float32 to be kept."""
    max_rel_diff: float | None = None  # per graph, fed float32's inputs
    cosine: float | None = None  # per graph, fed float32's inputs
    token_agreement: float = 0.0  # whole variant pipeline along float32's greedy tokens


# float16 keeps ~3 decimal digits; through a few layers of a small model the
# max difference relative to the largest output magnitude stays near 1e-3.
FP16_BOUND = 2e-2
# 8 and 4 bits move single values by far more than float16 does (a max relative
# difference says little), so the bounds are on the direction of each graph's
# output and on what a user sees, the tokens; the figures are printed either way.
BOUNDS = {
    "fp16": Bounds(max_rel_diff=FP16_BOUND, token_agreement=0.9),
    "quantized": Bounds(cosine=0.95, token_agreement=0.75),
    "int8": Bounds(cosine=0.95, token_agreement=0.75),
    "uint8": Bounds(cosine=0.95, token_agreement=0.75),
    "qdq": Bounds(cosine=0.95, token_agreement=0.75),
    "int8mm": Bounds(cosine=0.95, token_agreement=0.75),
    "q4": Bounds(cosine=0.9, token_agreement=0.6),
    "q4f16": Bounds(cosine=0.9, token_agreement=0.6),
    "bnb4": Bounds(cosine=0.9, token_agreement=0.6),
}
SUFFIX = {name: f"_{name}" for name in BOUNDS}
# The text graphs of `_qdq` and `_int8mm`: those that measured fastest on a
# Florence-2-base-shaped model (docs/src/performance.md): dynamic int8, a quarter of the weights to
# read per decoder token (the decoder is memory-bound) and integer matmuls in the
# encoder; the embedding table in 8 bits too (a gather: no cost, a quarter of the memory).
TEXT_FOR_OWN_VISION = {"embed_tokens": "int8", "encoder_model": "int8", "decoder_model_merged": "int8"}
CALIBRATION_IMAGES = 8
CHECK_IMAGES = 4


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




def _write_graph(name: str, graph: str, src: str, dst: str, calibration) -> None:
    if name == "fp16":
        onnx.save(to_fp16(onnx.load(src)), dst)
    elif name in ("quantized", "int8", "uint8"):
        quantize.dynamic(src, dst, "auto" if name == "quantized" else name)
    elif name == "q4":
        onnx.save(quantize.q4(src), dst)
    elif name == "q4f16":
        onnx.save(to_fp16(quantize.q4(src)), dst)
    elif name == "bnb4":
        onnx.save(quantize.bnb4(src), dst)
    elif name == "qdq" and graph == "vision_encoder":
        quantize.static_qdq(src, dst, calibration())
    elif name == "int8mm" and graph == "vision_encoder":
        quantize.dynamic_matmul(src, dst)
    elif name in ("qdq", "int8mm"):
        text = TEXT_FOR_OWN_VISION[graph]
        done = os.path.join(os.path.dirname(src), f"{graph}_{text}.onnx")
        if not text:
            shutil.copyfile(src, dst)
        elif os.path.isfile(done):  # the same quantisation, already written and checked
            shutil.copyfile(done, dst)
        else:
            _write_graph(text, graph, src, dst, calibration)
    else:
        raise ValueError(f"unknown variant {name!r}; expected one of {', '.join(BOUNDS)}")


def _within(name: str, figures: dict) -> list[str]:
    b = BOUNDS[name]
    problems = []
    for g, f in figures["graphs"].items():
        if b.max_rel_diff is not None and not f["max_rel_diff"] <= b.max_rel_diff:
            problems.append(f"{g}: max relative difference {f['max_rel_diff']:.2e} > {b.max_rel_diff:g}")
        if b.cosine is not None and not f["cosine"] >= b.cosine:
            problems.append(f"{g}: cosine {f['cosine']:.4f} < {b.cosine:g}")
    if not figures["token_agreement"] >= b.token_agreement:
        problems.append(f"token agreement {figures['token_agreement']:.1%} < {b.token_agreement:.0%}")
    return problems


def _summary(name: str, f: dict) -> str:
    graphs = ", ".join(f"{g} cos {x['cosine']:.4f} rel {x['max_rel_diff']:.1e}" for g, x in f["graphs"].items())
    return (f"  _{name}: tokens along float32's greedy path {f['token_agreement']:.1%} of {f['steps']} steps "
            f"(decoder alone {f['decoder_alone_token_agreement']:.1%}); {graphs}")


def write_variants(model_dir: str, names: list[str], calibration_dir: str | None = None, threads: int = 2,
                   log=print) -> dict:
    """Writes and checks the variants `names` (keys of BOUNDS) that `model_dir` lacks, and
    the batchable decoder of each (batched_variants) when the float32 one is there; returns
    their check figures (none for what was already there)."""
    unknown = [n for n in names if n not in BOUNDS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; expected some of {', '.join(BOUNDS)}")
    onnx_dir = os.path.join(model_dir, "onnx")
    path = lambda g, suffix: os.path.join(onnx_dir, f"{g}{suffix}.onnx")  # noqa: E731
    todo = [n for n in names if not all(os.path.isfile(path(g, SUFFIX[n])) for g in GRAPHS)]
    # With the float32 batchable decoder there, each variant that has a batchable form gets its own.
    batchable = [n for n in names if n in batched_variants.BITS and batched_variants.has_pair(onnx_dir, "")
                 and not batched_variants.has_pair(onnx_dir, SUFFIX[n])]
    if not todo and not batchable:
        return {}
    if todo:
        log(f"writing variants {', '.join(SUFFIX[n] for n in todo)} into {onnx_dir}")
    pre = json.load(open(os.path.join(model_dir, "preprocessor_config.json")))
    ref = variant_check.Reference(model_dir, variant_check.scenes(CHECK_IMAGES, seed=1), threads)

    def calibration():
        images = variant_check.scenes(CALIBRATION_IMAGES, seed=2)
        if calibration_dir:
            images += [Image.open(os.path.join(calibration_dir, f)) for f in sorted(os.listdir(calibration_dir))
                       if f.lower().endswith((".png", ".jpg", ".jpeg", ".bmp", ".webp"))]
        return [variant_check.pixel_values(img, pre) for img in images]

    # The quantisation tools warn at length about every tensor they leave alone.
    logging.getLogger().setLevel(logging.ERROR)
    figures = {}
    for name in todo:
        suffix = SUFFIX[name]
        partial = f"{suffix}.partial"
        for g in GRAPHS:
            _write_graph(name, g, path(g, ""), path(g, partial), calibration)
        f = variant_check.compare(ref, partial, threads)
        log(_summary(name, f))
        problems = _within(name, f)
        if problems:
            for g in GRAPHS:
                os.remove(path(g, partial))
            raise AssertionError(f"variant {suffix} not kept: " + "; ".join(problems))
        for g in GRAPHS:
            os.replace(path(g, partial), path(g, suffix))
        figures[suffix] = f
    for name in batchable:
        suffix = SUFFIX[name]
        f = batched_variants.write(onnx_dir, name, suffix, ref, BOUNDS[name].token_agreement, threads, log)
        figures.setdefault(suffix, {})["batched"] = f
    return figures
