"""A model directory's text decoder rebuilt in PyTorch from its merged decoder graph,
for adding graphs to a directory whose checkpoint is gone (the test model's is not
committed). Only the decoder, its positions and the language-model head are
restored: what graphs.Decoder, graphs.CrossKeyValues and graphs.BatchedDecoder read.
The caller checks the rebuilt decoder against the merged graph it came from."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import onnx
import torch
from onnx import numpy_helper
from transformers import BartConfig, BartForConditionalGeneration


def _no_past_branch(merged: onnx.ModelProto) -> onnx.GraphProto:
    (node,) = [n for n in merged.graph.node if n.op_type == "If"]
    return next(a.g for a in node.attribute if a.name == "else_branch")


def rebuild(model_dir: str, merged_file: str = "decoder_model_merged.onnx"):
    """An object shaped like Florence2ForConditionalGeneration as far as the decoder
    modules of graphs.py look (model.model.language_model.decoder, lm_head,
    get_input_embeddings), with the merged decoder's weights."""
    with open(os.path.join(model_dir, "config.json")) as f:
        text = json.load(f)["text_config"]
    keys = {k: v for k, v in text.items() if k not in ("architectures", "model_type", "transformers_version")}
    bart = BartForConditionalGeneration(BartConfig(**keys)).eval()
    merged = onnx.load(os.path.join(model_dir, "onnx", merged_file))
    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in merged.graph.initializer}
    # The branch's nodes in forward order, each with the weight it reads.
    reads = []
    branch = _no_past_branch(merged).node
    # The TorchScript exporter stores equal weights once and reads the copies through
    # Identity nodes (all the zero biases of a randomly initialised model).
    for node in branch:
        if node.op_type == "Identity" and node.input[0] in weights:
            weights[node.output[0]] = weights[node.input[0]]
    for node in branch:
        found = [weights[i] for i in node.input if i in weights]
        if node.op_type in ("Gather", "MatMul", "Add", "LayerNormalization") and found:
            reads.append((node.op_type, found))
    reads.reverse()

    def take(op: str) -> list[torch.Tensor]:
        got_op, tensors = reads.pop()
        if got_op != op:
            raise ValueError(f"{merged_file}: expected {op}, found {got_op} (not an export of this exporter)")
        return tensors

    def linear(lin: torch.nn.Linear) -> None:
        (w,) = take("MatMul")
        lin.weight.data.copy_(w.T)
        if lin.bias is not None:
            (b,) = take("Add")
            lin.bias.data.copy_(b)

    def norm(ln: torch.nn.LayerNorm) -> None:
        w, b = take("LayerNormalization")
        ln.weight.data.copy_(w)
        ln.bias.data.copy_(b)

    dec = bart.model.decoder
    with torch.no_grad():
        (positions,) = take("Gather")
        dec.embed_positions.weight.data.copy_(positions)
        norm(dec.layernorm_embedding)
        for layer in dec.layers:
            for attn, attn_norm in ((layer.self_attn, layer.self_attn_layer_norm),
                                    (layer.encoder_attn, layer.encoder_attn_layer_norm)):
                for lin in (attn.q_proj, attn.k_proj, attn.v_proj, attn.out_proj):
                    linear(lin)
                norm(attn_norm)
            linear(layer.fc1)
            linear(layer.fc2)
            norm(layer.final_layer_norm)
        (head,) = take("MatMul")
        bart.lm_head.weight.data.copy_(head.T)
    if reads:
        raise ValueError(f"{merged_file}: {len(reads)} weights left over (not an export of this exporter)")
    return SimpleNamespace(
        model=SimpleNamespace(language_model=bart.model),
        lm_head=bart.lm_head,
        get_input_embeddings=lambda: bart.model.shared,
        config=SimpleNamespace(text_config=bart.config),
    )
