"""graph_rewrites on small graphs shaped as DaViT's attention makes q, k and v,
and on the tiny model's vision encoder, run by ONNX Runtime before and after."""

from __future__ import annotations

import os
import sys
import unittest

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from florence_export.graph_rewrites import conv_residual_channels_last, squeeze_before_transpose  # noqa: E402

TINY_VISION = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures",
                           "tiny-florence2", "onnx", "vision_encoder.onnx")

SHAPE = [2, 6, 3, 4, 5]  # [B, N, 3, heads, d]


def qkv_graph(opset: int, perm=(2, 0, 3, 4, 1), split_axis=0, squeeze_axis=0, extra_user=False) -> onnx.ModelProto:
    """x -> Transpose(perm) -> Split(split_axis, 3 parts) -> Squeeze(squeeze_axis) -> q, k, v (each x 2 after)."""
    nodes = [helper.make_node("Transpose", ["x"], ["t"], name="t", perm=list(perm))]
    inits = []
    if opset >= 13:
        inits.append(numpy_helper.from_array(np.array([1, 1, 1], np.int64), "sizes"))
        inits.append(numpy_helper.from_array(np.array([squeeze_axis], np.int64), "axes"))
        nodes.append(helper.make_node("Split", ["t", "sizes"], ["s0", "s1", "s2"], name="split", axis=split_axis))
    else:
        nodes.append(helper.make_node("Split", ["t"], ["s0", "s1", "s2"], name="split", axis=split_axis))
    permuted = [SHAPE[p] for p in perm]
    part = permuted[:split_axis] + [permuted[split_axis] // 3] + permuted[split_axis + 1:]
    part_shape = part[:squeeze_axis] + part[squeeze_axis + 1:]
    outputs = []
    for i, name in enumerate("qkv"):
        sq = ([f"s{i}", "axes"] if opset >= 13 else [f"s{i}"])
        kw = {} if opset >= 13 else {"axes": [squeeze_axis]}
        nodes.append(helper.make_node("Squeeze", sq, [f"{name}_sq"], name=f"squeeze_{name}", **kw))
        nodes.append(helper.make_node("Add", [f"{name}_sq", f"{name}_sq"], [name], name=f"use_{name}"))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, part_shape))
    if extra_user:
        nodes.append(helper.make_node("Identity", ["t"], ["t_too"], name="other"))
        outputs.append(helper.make_tensor_value_info("t_too", TensorProto.FLOAT, permuted))
    graph = helper.make_graph(nodes, "qkv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
                              outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, {"x": x})


class SqueezeBeforeTranspose(unittest.TestCase):
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)

    def check_rewritten(self, opset: int, perm) -> None:
        model = qkv_graph(opset, perm)
        before = run(model, self.x)
        self.assertEqual(squeeze_before_transpose(model), 1)
        onnx.checker.check_model(model)
        ops = [n.op_type for n in model.graph.node]
        self.assertEqual(ops.count("Split"), 1)
        # Every remaining Transpose is one rank lower than the input.
        for n in model.graph.node:
            if n.op_type == "Transpose":
                self.assertEqual(len(n.attribute[0].ints), len(SHAPE) - 1)
        after = run(model, self.x)
        for b, a in zip(before, after):
            self.assertEqual(b.shape, a.shape)
            np.testing.assert_array_equal(b, a)

    def test_window_attention_layout_opset_17(self):
        self.check_rewritten(17, (2, 0, 3, 1, 4))

    def test_channel_attention_layout_opset_17(self):
        self.check_rewritten(17, (2, 0, 3, 4, 1))

    def test_squeeze_axes_as_attribute_opset_11(self):
        self.check_rewritten(11, (2, 0, 3, 1, 4))

    def test_left_alone_when_the_split_is_not_on_axis_0(self):
        model = qkv_graph(17, perm=(0, 2, 1, 3, 4), split_axis=1, squeeze_axis=1)
        self.assertEqual(squeeze_before_transpose(model), 0)

    def test_left_alone_when_the_transpose_has_another_user(self):
        model = qkv_graph(17, extra_user=True)
        before = run(model, self.x)
        self.assertEqual(squeeze_before_transpose(model), 0)
        for b, a in zip(before, run(model, self.x)):
            np.testing.assert_array_equal(b, a)



class TheTinyModelsVisionEncoder(unittest.TestCase):
    """Both rewrites on a real export: the same features, bit for bit, and fewer
    copies in what ONNX Runtime runs."""

    @staticmethod
    def session(model, optimised_to: str | None = None):
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.log_severity_level = 3  # the export's own unused constants
        if optimised_to:
            so.optimized_model_filepath = optimised_to
        return ort.InferenceSession(model if isinstance(model, str) else model.SerializeToString(), so,
                                    providers=["CPUExecutionProvider"])

    def transposes_run(self, model, tmp: str) -> int:
        self.session(model, tmp)
        return sum(n.op_type == "Transpose" for n in onnx.load(tmp).graph.node)

    def test_rewritten_it_gives_the_same_features_with_fewer_transposes(self):
        import tempfile

        x = np.random.default_rng(1).standard_normal((1, 3, 768, 768)).astype(np.float32)
        before = self.session(TINY_VISION).run(None, {"pixel_values": x})[0]
        model = onnx.load(TINY_VISION)
        # Its window and channel attention blocks, one Split each.
        self.assertEqual(squeeze_before_transpose(model), sum(n.op_type == "Split" for n in model.graph.node))
        # Of its 16 position encodings (4 stages x spatial and channel block x 2), the
        # first of each stage reads the patch embedding's channels-first output
        # directly (nothing to fold there) and is left alone.
        self.assertEqual(conv_residual_channels_last(model), 12)
        onnx.checker.check_model(model)
        after = self.session(model).run(None, {"pixel_values": x})[0]
        np.testing.assert_array_equal(before, after)
        with tempfile.TemporaryDirectory() as tmp:
            old = self.transposes_run(TINY_VISION, os.path.join(tmp, "old.onnx"))
            new = self.transposes_run(model, os.path.join(tmp, "new.onnx"))
        # Both of each rewritten convolution's transposes are folded into ONNX Runtime's reorders.
        self.assertEqual(old - new, 2 * 12)

    def test_a_second_pass_finds_nothing_left(self):
        model = onnx.load(TINY_VISION)
        squeeze_before_transpose(model)
        conv_residual_channels_last(model)
        self.assertEqual(squeeze_before_transpose(model), 0)
        self.assertEqual(conv_residual_channels_last(model), 0)

if __name__ == "__main__":
    unittest.main()
