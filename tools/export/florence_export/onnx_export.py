"""Writing the graphs as ONNX, merging the decoders, checking them against PyTorch."""

from __future__ import annotations

import hashlib
import io
import os

import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from .numerics import max_rel_diff, session  # noqa: F401  (re-exported for model_dir)

OPSET = 17


def export_module(module, args, input_names, output_names, dynamic_axes, path=None) -> onnx.ModelProto:
    """TorchScript export (deterministic, no dynamo) of an eval-mode module."""
    module.eval()
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            module,
            tuple(args),
            buf,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    # The TorchScript exporter puts modules back into the mode they had; keep eval.
    module.eval()
    model = onnx.load_from_string(buf.getvalue())
    model.producer_name = "florence-export"
    model.producer_version = "1"
    if path:
        save(model, path)
    return model


def save(model: onnx.ModelProto, path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    onnx.checker.check_model(model)
    with open(path, "wb") as f:
        f.write(model.SerializeToString(deterministic=True))


def _prefix_graph(graph: onnx.GraphProto, prefix: str, keep: set[str]) -> None:
    """Rename every value produced inside `graph` (not the outer-scope names in `keep`)."""
    rename = {}
    for init in graph.initializer:
        rename[init.name] = prefix + init.name
    for node in graph.node:
        for out in node.output:
            if out and out not in keep:
                rename[out] = prefix + out
        node.name = prefix + node.name
    for init in graph.initializer:
        init.name = rename[init.name]
    for node in graph.node:
        node.input[:] = [rename.get(i, i) for i in node.input]
        node.output[:] = [rename.get(o, o) for o in node.output]
    for out in graph.output:
        out.name = rename.get(out.name, out.name)
    for vi in graph.value_info:
        vi.name = rename.get(vi.name, vi.name)


def merge_decoders(no_past: onnx.ModelProto, with_past: onnx.ModelProto) -> onnx.ModelProto:
    """One graph with `use_cache_branch` choosing between the two decoders (an ONNX If),
    shared weights stored once: the layout of onnx-community's decoder_model_merged."""
    g0, g1 = onnx.GraphProto(), onnx.GraphProto()
    g0.CopyFrom(no_past.graph)
    g1.CopyFrom(with_past.graph)
    # The with-past branch does not read encoder_hidden_states (the exporter drops unused
    # inputs), the no-past one does not read the past: the merged graph takes the union.
    outer_inputs = list(no_past.graph.input)
    outer_inputs += [i for i in with_past.graph.input if i.name not in {o.name for o in outer_inputs}]
    outer_names = {i.name for i in outer_inputs}
    _prefix_graph(g0, "np_", outer_names)
    _prefix_graph(g1, "wp_", outer_names)

    # Move initializers to the outer graph, one copy per distinct tensor.
    shared: dict[str, TensorProto] = {}
    by_digest: dict[str, str] = {}
    for g in (g0, g1):
        rename = {}
        for init in g.initializer:
            digest = hashlib.sha256(numpy_helper.to_array(init).tobytes()).hexdigest()
            key = f"{digest}:{init.data_type}:{list(init.dims)}"
            if key not in by_digest:
                name = f"w{len(by_digest)}"
                by_digest[key] = name
                t = TensorProto()
                t.CopyFrom(init)
                t.name = name
                shared[name] = t
            rename[init.name] = by_digest[key]
        del g.initializer[:]
        for node in g.node:
            node.input[:] = [rename.get(i, i) for i in node.input]

    # Branch outputs become If outputs; the branches themselves name theirs uniquely.
    out_names = [o.name for o in no_past.graph.output]
    for g, prefix in ((g0, "np_"), (g1, "wp_")):
        mapping = {}
        for out in g.output:
            new = prefix + "out_" + out.name if not out.name.startswith(prefix) else out.name
            mapping[out.name] = new
        for node in g.node:
            node.output[:] = [mapping.get(o, o) for o in node.output]
            node.input[:] = [mapping.get(i, i) for i in node.input]
        for out in g.output:
            out.name = mapping[out.name]
        del g.input[:]
        g.name = "decoder_no_past" if prefix == "np_" else "decoder_with_past"

    use_cache = helper.make_tensor_value_info("use_cache_branch", TensorProto.BOOL, [1])
    if_node = helper.make_node(
        "If", ["use_cache_branch"], out_names, name="optimum::if", then_branch=g1, else_branch=g0
    )
    outputs = []
    for o in no_past.graph.output:
        vi = onnx.ValueInfoProto()
        vi.CopyFrom(o)
        outputs.append(vi)
    graph = helper.make_graph(
        [if_node],
        "decoder_model_merged",
        outer_inputs + [use_cache],
        outputs,
        initializer=list(shared.values()),
    )
    model = helper.make_model(graph, opset_imports=no_past.opset_import, producer_name="florence-export")
    model.ir_version = no_past.ir_version
    return model


# A graph in ONNX Runtime against the PyTorch module it came from, as the max
# difference relative to the largest reference magnitude (kernels differ: ~1e-6).
ONNX_BOUND = 2e-5


def check(name: str, got, want, bound: float, log=print) -> float:
    """Max difference relative to the largest reference magnitude; raises above `bound`."""
    d = max_rel_diff(got, want)
    log(f"  {name}: max relative difference {d:.2e}")
    if not d <= bound:
        raise AssertionError(f"{name}: ONNX output differs from PyTorch by {d:.2e} (bound {bound:.0e})")
    return d
