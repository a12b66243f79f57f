"""The batchable decoder's file names, port names and inputs, without PyTorch: shared by
batched.py (which exports and checks the float32 graphs) and batched_variants.py (which
makes and checks a precision variant's pair with ONNX Runtime alone)."""

from __future__ import annotations

import numpy as np

BATCHED_DECODER = "decoder_model_batched"
CROSS_KEY_VALUES = "decoder_cross_key_values"
MERGED_DECODER = "decoder_model_merged"


def past_names(layers: int) -> list[str]:
    return [f"past_key_values.{i}.{kind}.{kv}" for i in range(layers)
            for kind in ("decoder", "encoder") for kv in ("key", "value")]


def new_names(layers: int) -> list[str]:
    return [f"new_key_values.{i}.decoder.{kv}" for i in range(layers) for kv in ("key", "value")]


def cross_names(layers: int) -> list[str]:
    return [f"present.{i}.encoder.{kv}" for i in range(layers) for kv in ("key", "value")]


class Row:
    """One request decoding through the batched graph: its cross keys and values, its
    window of past decoder keys and values, and its tokens so far."""

    def __init__(self, cross: list[np.ndarray], tokens: list[int], layers: int):
        self.cross = cross  # per layer key, value [1,H,E,Dh]
        self.tokens = tokens
        self.past: list[list[np.ndarray]] = [[] for _ in range(2 * layers)]  # [1,H,1,Dh] slots

    @property
    def enc_len(self) -> int:
        return self.cross[0].shape[2]


def step_feed(rows: list[Row], step: list[int], embeds: np.ndarray, window: int, enc: int, layers: int) -> dict:
    """The batched graph's inputs for rows at their step `step[r]`, padded to `window`
    slots and `enc` encoder positions (zeros, masked)."""
    b = len(rows)
    heads, dh = rows[0].cross[0].shape[1], rows[0].cross[0].shape[3]
    feed = {"inputs_embeds": embeds.astype(np.float32),
            "position_ids": np.array([[s] for s in step], np.int64),
            "self_attention_mask": np.zeros((b, window), np.int64),
            "encoder_attention_mask": np.zeros((b, enc), np.int64)}
    for r, s in enumerate(step):
        feed["self_attention_mask"][r, :s] = 1
        feed["encoder_attention_mask"][r, :rows[r].enc_len] = 1
    for i in range(layers):
        for j, kv in enumerate(("key", "value")):
            past = np.zeros((b, heads, window, dh), np.float32)
            cross = np.zeros((b, heads, enc, dh), np.float32)
            for r, s in enumerate(step):
                if s:
                    past[r, :, :s] = np.concatenate(rows[r].past[2 * i + j][:s], axis=2)[0]
                cross[r, :, :rows[r].enc_len] = rows[r].cross[2 * i + j][0]
            feed[f"past_key_values.{i}.decoder.{kv}"] = past
            feed[f"past_key_values.{i}.encoder.{kv}"] = cross
    return feed
