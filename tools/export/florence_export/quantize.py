"""Integer and 4-bit variants of the four graphs, written with ONNX Runtime's own
quantisation tools the way onnx-community's files are made (transformers.js
`scripts/quantize.py`), plus a statically calibrated int8 QDQ vision encoder.

- `_quantized` (onnx-community's "q8"), `_int8`, `_uint8`: dynamic quantisation
  (`quantize_dynamic`: weights stored in 8 bits, activations quantised at run
  time; every op of ONNX Runtime's IntegerOps registry, subgraphs included,
  MatMul only with a constant B). `_quantized` takes unsigned weights when the
  graph has a Conv (onnxruntime-web has no ConvInteger for signed ones), else
  signed; `_int8` is signed and `_uint8` unsigned everywhere.
- `_q4`: MatMul weights in 4 bits, blocks of 32, symmetric (`MatMulNBits`);
  `_q4f16`: the same, then float16; `_bnb4`: MatMul weights in NF4, blocks of
  64 (`MatMulBnb4`).
- `_int8mm`'s vision encoder: dynamic quantisation of the matrix products
  with constant weights only (signed, per tensor), convolutions left in float,
  after graph_rewrites.squeeze_before_transpose. ONNX Runtime fuses each into
  DynamicQuantizeMatMul (VNNI / AMX on x86, SDOT on Arm); ConvInteger, which
  `_int8` gets for the convolutions, has no such kernel and took 37 % of
  `_int8`'s vision time. Measured (base-sized, 768, 1 and 2 threads) 0.49x and
  0.52x fp32's vision time against 0.70x and 0.88x for `_qdq`'s static graph,
  with cosine 0.9997 against 0.9961.
- static QDQ (`_qdq`'s vision encoder): Conv/MatMul/Gemm with per-channel
  int8 weights and uint8 activations whose ranges are calibrated (min-max) on
  real images, in the QDQ format ONNX Runtime fuses into integer kernels (VNNI
  on x86, SDOT/UDOT on Arm).
"""

from __future__ import annotations

import logging
import os

import numpy as np
import onnx


def _operators(graph: onnx.GraphProto) -> set[str]:
    ops = set()
    for node in graph.node:
        ops.add(node.op_type)
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                ops |= _operators(a.g)
    return ops


def dynamic(src: str, dst: str, weights: str) -> None:
    """weights: "auto" (onnx-community's `_quantized`), "int8" or "uint8"."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if weights == "auto":
        weights = "uint8" if "Conv" in _operators(onnx.load(src, load_external_data=False).graph) else "int8"
    quantize_dynamic(src, dst, per_channel=False, reduce_range=False,
                     weight_type=QuantType.QUInt8 if weights == "uint8" else QuantType.QInt8,
                     extra_options={"EnableSubgraph": True, "MatMulConstBOnly": True})


def dynamic_matmul(src: str, dst: str) -> None:
    """Matrix products with constant weights in int8 (per tensor), after graph_rewrites' two
    rewrites (which leave the float graph's numbers as they are)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from .graph_rewrites import conv_residual_channels_last, squeeze_before_transpose

    model = onnx.load(src)
    squeeze_before_transpose(model)
    conv_residual_channels_last(model)
    rewritten = f"{dst}.rewritten.onnx"
    onnx.save(model, rewritten)
    try:
        quantize_dynamic(rewritten, dst, op_types_to_quantize=["MatMul"], per_channel=False, reduce_range=False,
                         weight_type=QuantType.QInt8, extra_options={"MatMulConstBOnly": True})
    finally:
        os.remove(rewritten)


def q4(src: str) -> onnx.ModelProto:
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    q = MatMulNBitsQuantizer(onnx.load(src), bits=4, block_size=32, is_symmetric=True, accuracy_level=None)
    q.process()
    return q.model.model


def bnb4(src: str) -> onnx.ModelProto:
    from onnxruntime.quantization.matmul_bnb4_quantizer import MatMulBnb4Quantizer

    q = MatMulBnb4Quantizer(onnx.load(src), quant_type=MatMulBnb4Quantizer.NF4, block_size=64)
    q.process()
    return q.model.model


class _Images:
    """The calibration batches, one image at a time (onnxruntime's CalibrationDataReader)."""

    def __init__(self, input_name: str, pixel_values: list[np.ndarray]):
        self.it = iter([{input_name: pv} for pv in pixel_values])

    def get_next(self):
        return next(self.it, None)


def static_qdq(src: str, dst: str, pixel_values: list[np.ndarray]) -> None:
    """Statically quantised QDQ graph, calibrated on `pixel_values` ([1,3,H,W] each)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    logging.getLogger("onnxruntime").setLevel(logging.ERROR)
    name = onnx.load(src, load_external_data=False).graph.input[0].name
    quantize_static(src, dst, _Images(name, pixel_values), quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=["Conv", "MatMul", "Gemm"], per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    # Min-max calibration reduces each tensor to its range in the graph
                    # (ReduceMin/ReduceMax outputs), so even 768x768 images cost little memory.
                    calibrate_method=CalibrationMethod.MinMax)
