"""The batchable decoder: two graphs this exporter adds beside onnx-community's four,
so that decoder steps of different requests (different past lengths, prompts and
tasks) share one run.

- `onnx/decoder_cross_key_values.onnx`: encoder states -> each layer's cross-attention
  key and value, once per request.
- `onnx/decoder_model_batched.onnx`: one step for B rows, each with its own position,
  its past padded to a common window W (`self_attention_mask`) and its cross keys and
  values padded to a common E (`encoder_attention_mask`); see graphs.BatchedDecoder.

Their weights are the merged decoder's: each initializer that the merged decoder also
holds is stored as external data pointing at its bytes inside
`decoder_model_merged.onnx`, so the two graphs add structure, not a second copy of the
weights, to a model directory (the test model's fixtures stay small). Both files are
therefore only valid beside the merged decoder they were written with.
"""

from __future__ import annotations

import os

import numpy as np
import onnx
import torch
from onnx import TensorProto

from . import graphs
from .batched_feed import (BATCHED_DECODER, CROSS_KEY_VALUES, MERGED_DECODER, Row, cross_names,  # noqa: F401
                           new_names, past_names, step_feed)
from .onnx_export import ONNX_BOUND, check, export_module, save, session

# Tensors smaller than this stay inside the graph (shapes, scalars, small biases).
SHARE_MIN_BYTES = 1024


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def share_weights(model: onnx.ModelProto, merged_path: str) -> tuple[int, int]:
    """Points every initializer whose bytes the merged decoder holds at those bytes
    (ONNX external data with an offset into `merged_path`). Returns (shared, kept) bytes."""
    with open(merged_path, "rb") as f:
        blob = f.read()
    location = os.path.basename(merged_path)
    shared = kept = 0
    for init in model.graph.initializer:
        raw = init.raw_data
        offset = blob.find(raw) if len(raw) >= SHARE_MIN_BYTES else -1
        if offset < 0:
            kept += len(raw)
            continue
        init.ClearField("raw_data")
        init.data_location = TensorProto.EXTERNAL
        del init.external_data[:]
        for key, value in (("location", location), ("offset", str(offset)), ("length", str(len(raw)))):
            entry = init.external_data.add()
            entry.key, entry.value = key, value
        shared += len(raw)
    return shared, kept


def _save_beside_merged(model: onnx.ModelProto, onnx_dir: str, stem: str, log) -> None:
    # Checked with its weights inline; the external data when verify() loads the graph.
    onnx.checker.check_model(model)
    shared, kept = share_weights(model, os.path.join(onnx_dir, MERGED_DECODER + ".onnx"))
    path = os.path.join(onnx_dir, stem + ".onnx")
    os.makedirs(onnx_dir, exist_ok=True)
    with open(path, "wb") as f:
        f.write(model.SerializeToString(deterministic=True))
    log(f"  {stem}.onnx: {shared / 1e6:.2f} MB of weights read from {MERGED_DECODER}.onnx, "
        f"{kept / 1e6:.3f} MB its own")


def export(model, onnx_dir: str, hidden: torch.Tensor, log=print) -> None:
    """Writes both graphs from `model`; `hidden` [1,E,D] is a sample of encoder states."""
    text = model.config.text_config
    layers, heads, d = text.decoder_layers, text.decoder_attention_heads, text.d_model
    dh = d // heads
    cross = graphs.CrossKeyValues(model).eval()
    axes = {"encoder_hidden_states": {0: "batch_size", 1: "encoder_sequence_length"}}
    for name in cross_names(layers):
        axes[name] = {0: "batch_size", 2: "encoder_sequence_length"}
    m = export_module(cross, [hidden], ["encoder_hidden_states"], cross_names(layers), axes)
    _save_beside_merged(m, onnx_dir, CROSS_KEY_VALUES, log)

    b, w = 2, 4
    e = hidden.shape[1]
    emb = model.get_input_embeddings()
    embeds = emb(torch.tensor([[5], [6]]))
    args = [embeds, torch.tensor([[3], [1]]), torch.ones(b, w, dtype=torch.int64),
            torch.ones(b, e, dtype=torch.int64)]
    g = torch.Generator().manual_seed(4)
    for i in range(layers):
        args += [torch.randn(b, heads, w, dh, generator=g), torch.randn(b, heads, w, dh, generator=g),
                 torch.randn(b, heads, e, dh, generator=g), torch.randn(b, heads, e, dh, generator=g)]
    inputs = ["inputs_embeds", "position_ids", "self_attention_mask", "encoder_attention_mask"] + past_names(layers)
    axes = {"inputs_embeds": {0: "batch_size"}, "position_ids": {0: "batch_size"},
            "self_attention_mask": {0: "batch_size", 1: "window"},
            "encoder_attention_mask": {0: "batch_size", 1: "encoder_sequence_length"},
            "logits": {0: "batch_size"}}
    for name in past_names(layers):
        axes[name] = {0: "batch_size", 2: "encoder_sequence_length" if ".encoder." in name else "window"}
    for name in new_names(layers):
        axes[name] = {0: "batch_size"}
    m = export_module(graphs.BatchedDecoder(model).eval(), args, inputs, ["logits"] + new_names(layers), axes)
    _save_beside_merged(m, onnx_dir, BATCHED_DECODER, log)


def verify(model, onnx_dir: str, bound: float, log=print) -> dict:
    """The batched graphs against the PyTorch decoder step by step (alone, padded), and
    rows of a batch (different prompts, past lengths, paddings) against the same rows
    alone through the same graph: the largest difference, expected 0.

    Every run has at least one masked slot in the window and in the encoder states: with
    that, a row's numbers measured the same at every padding (129 encoder lengths from 1
    to 599 with random pasts, tiny and base-shaped models), while a run without any
    padding gave different last bits for 55 of those lengths (logits up to 3e-6 apart on
    the tiny model): ONNX Runtime's kernels take another path for a row with no masked
    tail. The engine pads by one slot at least, so a request alone and in a batch always
    run in the padded regime."""
    log("checking the batched decoder against PyTorch, and batched rows against rows alone")
    text = model.config.text_config
    layers = text.decoder_layers
    emb = model.get_input_embeddings()
    s_cross = session(os.path.join(onnx_dir, CROSS_KEY_VALUES + ".onnx"))
    s_step = session(os.path.join(onnx_dir, BATCHED_DECODER + ".onnx"))
    with_past = graphs.Decoder(model, with_past=True)
    no_past = graphs.Decoder(model, with_past=False)
    g = torch.Generator().manual_seed(5)
    figures = {}
    rows = []
    refs = []
    with torch.no_grad():
        # Three requests: different encoder lengths and decoded tokens.
        for r, (enc_len, tokens) in enumerate([(23, [2, 0, 15, 16, 17, 18, 19, 20, 21]),
                                              (11, [2, 0, 40, 41, 42]),
                                              (30, [2, 0, 7, 8, 9, 10, 11]),
                                              (590, [2, 0, 50, 51, 52, 53, 54])]):
            hidden = torch.randn(1, enc_len, text.d_model, generator=g)
            mask = torch.ones(1, enc_len, dtype=torch.int64)
            cross = s_cross.run(None, {"encoder_hidden_states": _np(hidden)})
            want_cross = graphs.CrossKeyValues(model)(hidden)
            figures[f"cross_key_values_{r}"] = check(f"{CROSS_KEY_VALUES}.onnx request {r}", np.stack(cross),
                                                      np.stack([_np(t) for t in want_cross]), bound, log)
            rows.append(Row(cross, tokens, layers))
            # PyTorch's logits of every step, through the cached decoder modules.
            out = no_past(mask, hidden, emb(torch.tensor([tokens[:1]])))
            logits, past = [_np(out[0])[0, -1]], list(out[1:])
            for tok in tokens[1:]:
                out = with_past(mask, hidden, emb(torch.tensor([[tok]])), *past)
                logits.append(_np(out[0])[0, -1])
                for i in range(layers):
                    past[4 * i], past[4 * i + 1] = out[1 + 4 * i], out[2 + 4 * i]
            refs.append(logits)
        embed_table = _np(emb.weight)

        # Alone, each at its own step count, with the engine's padding: one masked slot more than
        # the row needs, in the window and in the encoder states (a run whose longest row has no
        # padding can differ in the last bits: see the docstring of `verify`).
        alone: dict[tuple[int, int], list[np.ndarray]] = {}
        worst = 0.0
        for r, row in enumerate(rows):
            for s, tok in enumerate(row.tokens):
                feed = step_feed([row], [s], embed_table[[[tok]]], s + 1, row.enc_len + 1, layers)
                out = s_step.run(None, feed)
                worst = max(worst, check(f"{BATCHED_DECODER}.onnx request {r} step {s}", out[0][0, 0], refs[r][s],
                                         bound, lambda _m: None))
                alone[(r, s)] = out
                for j in range(2 * layers):
                    row.past[j].append(out[1 + j])
        log(f"  {BATCHED_DECODER}.onnx alone (one padded slot) vs PyTorch, every step: "
            f"max relative difference {worst:.2e}")
        figures[BATCHED_DECODER] = worst

        # Rows together at different steps, and alone with other paddings: bit for bit.
        biggest = 0.0
        # Paddings from one slot past the longest row to many times the rows'.
        cases = [([0, 1, 2], [5, 2, 4], 16, 32), ([2, 0], [6, 0], 8, 32), ([1, 0, 2, 0], [3, 8, 0, 1], 16, 64),
                 ([0], [4], 64, 64), ([1], [4], 8, 16), ([1], [4], 5, 12), ([0, 2], [8, 6], 9, 31),
                 ([3, 1, 2], [2, 4, 6], 7, 591), ([3, 0], [6, 3], 130, 1024), ([3], [5], 6, 591)]
        for rs, steps, window, enc in cases:
            picked = [rows[r] for r in rs]
            toks = embed_table[[[rows[r].tokens[s]] for r, s in zip(rs, steps)]]
            out = s_step.run(None, step_feed(picked, steps, toks, window, enc, layers))
            for k, (r, s) in enumerate(zip(rs, steps)):
                for got, want in zip(out, alone[(r, s)]):
                    biggest = max(biggest, float(np.max(np.abs(got[k:k + 1] - want))))
        log(f"  batched rows vs the same rows alone ({len(cases)} batches, windows 5-130, encoder 12-1024): "
            f"max absolute difference {biggest:.1e}")
        figures["batched_vs_alone_max_abs"] = biggest
        if biggest != 0.0:
            raise AssertionError(f"a row's numbers depend on its batch: max difference {biggest:.1e}")
    return figures


def add(model, onnx_dir: str, log=print) -> dict:
    """Writes and checks both graphs beside the merged decoder in `onnx_dir`."""
    log("exporting the batched decoder")
    g = torch.Generator().manual_seed(7)
    export(model, onnx_dir, torch.randn(1, 13, model.config.text_config.d_model, generator=g), log)
    return verify(model, onnx_dir, ONNX_BOUND, log)
