"""Rewrites of exported graphs that leave their numbers unchanged and make
ONNX Runtime run them faster.

`squeeze_before_transpose`: DaViT's attention (window and channel) makes q, k
and v as `Transpose(qkv, P) -> Split(axis 0) -> Squeeze(0)` on a 5-D tensor
[B, N, 3, heads, d]. ONNX Runtime's transpose optimiser moves the Transpose
behind the Split but keeps the split's axis, now of size 1, inside it: three
5-D permutations such as [2, 0, 3, 4, 1] on [1, N, 1, heads, d], which its
Transpose kernel runs in its generic element-by-element path. In the int8
vision encoder of a Florence-2-base-sized model at 768 those took 170 ms of
1.5 s (2 threads). Splitting on the axis P sends to 0 and squeezing it
first leaves 4-D permutations ([0, 2, 3, 1] on [1, N, heads, d]) that the kernel
runs in 17 ms; the result is the same tensor, element for element.

`conv_residual_channels_last`: DaViT's convolutional position encodings take
the token sequence [B, N, C] to channels-first, run a depthwise convolution,
add the residual channels-first and go back: `Transpose(0, 2, 1) -> Reshape
[B, C, H, W] -> Conv -> Add(residual) -> Reshape [B, C, N] -> Transpose(0, 2,
1)`, two full copies of the activations per block (44 convolutions in the
base model). Rewritten as `Reshape [B, H, W, C] -> Transpose(0, 3, 1, 2) -> Conv
-> Transpose(0, 2, 3, 1) -> Add(residual, channels-last) -> Reshape [B, N, C]`,
ONNX Runtime's NCHWc layout pass folds both transposes into the reorders it
puts around the convolution anyway (`ReorderInput` / `ReorderOutput` with
`channels_last`), so the copies go: vision encoder's Transpose time at 768
208 -> 116 ms (fp32, 2 threads), and the int8 encoder 0.48x -> 0.42x fp32's
time. The features are bit for bit the same.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx
from onnx import helper, numpy_helper


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def _constant_ints(graph: onnx.GraphProto, producers: dict, name: str) -> list[int] | None:
    for init in graph.initializer:
        if init.name == name:
            return [int(v) for v in numpy_helper.to_array(init).ravel()]
    node = producers.get(name)
    if node is not None and node.op_type == "Constant":
        return [int(v) for v in numpy_helper.to_array(_attr(node, "value")).ravel()]
    return None


def _squeeze_axes(graph: onnx.GraphProto, producers: dict, node: onnx.NodeProto) -> list[int] | None:
    if len(node.input) > 1:
        return _constant_ints(graph, producers, node.input[1])
    return list(_attr(node, "axes", [])) or None


def _wiring(graph: onnx.GraphProto) -> tuple[dict, dict, set]:
    """Which node makes each tensor, which nodes read it, and the graph's outputs."""
    producers = {o: n for n in graph.node for o in n.output}
    consumers = defaultdict(list)
    for n in graph.node:
        for i in n.input:
            consumers[i].append(n)
    return producers, consumers, {o.name for o in graph.output}


def _replace_nodes(graph: onnx.GraphProto, replaced: dict[int, list[onnx.NodeProto]]) -> None:
    """Each node whose id is in `replaced` gives way to its list (empty: removed), in
    its place; a replacement reads only what came before the node it replaces, so
    the order stays topological."""
    rewritten = [m for n in graph.node for m in replaced.get(id(n), [n])]
    del graph.node[:]
    graph.node.extend(rewritten)


def squeeze_before_transpose(model: onnx.ModelProto) -> int:
    """Rewrites every `Transpose(P) -> Split(axis 0) -> Squeeze(axis 0)` of the main
    graph into `Split(axis P[0]) -> Squeeze(axis P[0]) -> Transpose(P without it)`,
    in place; returns how many it rewrote."""
    graph = model.graph
    producers, consumers, graph_outputs = _wiring(graph)
    axes_as_input = _opset(model) >= 13
    replaced: dict[int, list[onnx.NodeProto]] = {}
    dropped_inputs: set[str] = set()
    count = 0
    for transpose in graph.node:
        if transpose.op_type != "Transpose" or transpose.output[0] in graph_outputs:
            continue
        users = consumers[transpose.output[0]]
        if len(users) != 1 or users[0].op_type != "Split" or _attr(users[0], "axis", 0) != 0:
            continue
        split = users[0]
        perm = list(_attr(transpose, "perm", []))
        squeezes = [c for o in split.output for c in consumers[o]]
        if (not perm or any(o in graph_outputs for o in split.output)
                or len(squeezes) != len(split.output)
                or any(s.op_type != "Squeeze" or s.input[0] != o for s, o in zip(squeezes, split.output))
                or any(_squeeze_axes(graph, producers, s) != [0] for s in squeezes)):
            continue
        axis = perm[0]
        rest = [p - (p > axis) for p in perm[1:]]
        base = split.name or split.output[0]
        parts = [f"{o}/before_transpose" for o in split.output]
        new_split = helper.make_node("Split", [transpose.input[0], *split.input[1:]], parts,
                                     name=f"{base}/moved", axis=axis)
        new_split.attribute.extend(a for a in split.attribute if a.name != "axis")
        nodes = [new_split]
        if axes_as_input:
            axes = f"{base}/moved_axes"
            graph.initializer.append(numpy_helper.from_array(np.array([axis], np.int64), axes))
        for part, squeeze in zip(parts, squeezes):
            squeezed = f"{part}/squeezed"
            nodes.append(helper.make_node("Squeeze", [part, axes], [squeezed], name=f"{squeeze.name}/moved")
                         if axes_as_input else
                         helper.make_node("Squeeze", [part], [squeezed], name=f"{squeeze.name}/moved", axes=[axis]))
            nodes.append(helper.make_node("Transpose", [squeezed], [squeeze.output[0]],
                                          name=f"{squeeze.name}/transpose", perm=rest))
            replaced[id(squeeze)] = []
            dropped_inputs.update(squeeze.input[1:])
        # The new nodes take the Split's place: their input comes before the old
        # Transpose, their outputs' readers after the old Squeezes.
        replaced[id(transpose)] = []
        replaced[id(split)] = nodes
        count += 1
    _replace_nodes(graph, replaced)
    # The old Squeezes' axes constants, unless something else still reads them.
    read = {i for n in graph.node for i in n.input}
    left = [i for i in graph.initializer if i.name in read or i.name not in dropped_inputs]
    del graph.initializer[:]
    graph.initializer.extend(left)
    return count


def _permute(graph: onnx.GraphProto, name: str, perm: list[int]) -> str:
    """An int64 constant holding `perm`, for Gather over shape vectors (added once)."""
    if not any(i.name == name for i in graph.initializer):
        graph.initializer.append(numpy_helper.from_array(np.array(perm, np.int64), name))
    return name


def conv_residual_channels_last(model: onnx.ModelProto) -> int:
    """Rewrites every `Transpose(0,2,1) -> Reshape(4-D) -> Conv -> Add(conv, its input)
    -> Reshape(3-D) -> Transpose(0,2,1)` of the main graph so the residual and the
    reshapes are channels-last (see the module's comment), in place; `Shape` readers
    of the channels-first tensors get the same shapes, gathered from channels-last
    ones. Returns how many convolutions it rewrote."""
    graph = model.graph
    producers, consumers, graph_outputs = _wiring(graph)

    def only_user(name: str, op: str, perm: list[int] | None = None):
        users = consumers[name]
        if len(users) != 1 or users[0].op_type != op or name in graph_outputs:
            return None
        if perm is not None and list(_attr(users[0], "perm", [])) != perm:
            return None
        return users[0]

    def plain_shapes(users: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
        return [u for u in users if u.op_type == "Shape" and not u.attribute]

    to_nhwc = to_nchw = ncl_to_nlc = ""
    replaced: dict[int, list[onnx.NodeProto]] = {}
    count = 0
    for conv in graph.node:
        if conv.op_type != "Conv" or id(conv) in replaced:
            continue
        chw = conv.input[0]  # R: [B, C, H, W]
        reshape_in = producers.get(chw)
        transpose_in = producers.get(reshape_in.input[0]) if reshape_in is not None and reshape_in.op_type == "Reshape" else None
        if (transpose_in is None or transpose_in.op_type != "Transpose"
                or list(_attr(transpose_in, "perm", [])) != [0, 2, 1]
                or only_user(transpose_in.output[0], "Reshape") is not reshape_in):
            continue
        add = only_user(conv.output[0], "Add")
        if add is None or chw not in add.input or chw in graph_outputs:
            continue
        r_users = consumers[chw]
        if len(r_users) != 2 + len(plain_shapes(r_users)):  # the Conv, the Add, Shapes
            continue
        s_users = consumers[add.output[0]]
        reshape_out = [u for u in s_users if u.op_type == "Reshape"]
        if (len(reshape_out) != 1 or len(s_users) != 1 + len(plain_shapes(s_users))
                or add.output[0] in graph_outputs):
            continue
        reshape_out = reshape_out[0]
        transpose_out = only_user(reshape_out.output[0], "Transpose", [0, 2, 1])
        if transpose_out is None:
            continue
        if not to_nhwc:
            to_nhwc = _permute(graph, "channels_last/nchw_to_nhwc", [0, 2, 3, 1])
            to_nchw = _permute(graph, "channels_last/nhwc_to_nchw", [0, 3, 1, 2])
            ncl_to_nlc = _permute(graph, "channels_last/ncl_to_nlc", [0, 2, 1])
        p = f"{conv.name or conv.output[0]}/channels_last"
        x_hwc, s_hwc, y_hwc = f"{p}/input", f"{p}/sum", f"{p}/output"

        def nchw_shape(shape: onnx.NodeProto, of: str) -> list[onnx.NodeProto]:
            return [helper.make_node("Shape", [of], [f"{shape.output[0]}/channels_last"], name=f"{shape.name}/channels_last"),
                    helper.make_node("Gather", [f"{shape.output[0]}/channels_last", to_nchw], [shape.output[0]],
                                     name=f"{shape.name}/channels_first", axis=0)]

        replaced[id(transpose_in)] = []
        replaced[id(reshape_in)] = [
            helper.make_node("Gather", [reshape_in.input[1], to_nhwc], [f"{p}/input_shape"], name=f"{p}/input_shape",
                             axis=0),
            helper.make_node("Reshape", [transpose_in.input[0], f"{p}/input_shape"], [x_hwc], name=f"{p}/input"),
            helper.make_node("Transpose", [x_hwc], [chw], name=f"{p}/to_conv", perm=[0, 3, 1, 2]),
        ]
        for u in plain_shapes(r_users):
            replaced[id(u)] = nchw_shape(u, x_hwc)
        replaced[id(add)] = [
            helper.make_node("Transpose", [conv.output[0]], [y_hwc], name=f"{p}/from_conv", perm=[0, 2, 3, 1]),
            helper.make_node("Add", [y_hwc, x_hwc] if add.input[0] == conv.output[0] else [x_hwc, y_hwc], [s_hwc],
                             name=f"{p}/residual"),
        ]
        for u in plain_shapes(s_users):
            replaced[id(u)] = nchw_shape(u, s_hwc)
        replaced[id(reshape_out)] = [
            helper.make_node("Gather", [reshape_out.input[1], ncl_to_nlc], [f"{p}/tokens_shape"],
                             name=f"{p}/tokens_shape", axis=0),
            helper.make_node("Reshape", [s_hwc, f"{p}/tokens_shape"], [transpose_out.output[0]], name=f"{p}/tokens"),
        ]
        replaced[id(transpose_out)] = []
        count += 1
    _replace_nodes(graph, replaced)
    return count
