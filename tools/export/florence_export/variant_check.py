"""A precision variant against the float32 graphs it came from, on real inputs:
images preprocessed as the model's processor does, the `<CAPTION>` prompt, and
greedy decoding.

Two kinds of figures:
- each graph alone, fed float32's inputs: the largest difference relative to
  the largest output magnitude, the cosine similarity, and for the decoder the
  share of steps whose best token is float32's;
- the token agreement of the whole variant pipeline (its own vision features,
  embeddings, encoder states and decoder) teacher-forced along float32's
  greedy tokens: the share of steps at which it picks float32's token. This
  is what a user sees; the graph figures say where a disagreement comes from.

Greedy here is a plain argmax without generation's logits processors: the
check compares two sets of graphs, not decoding strategies.
"""

from __future__ import annotations

import json
import os
import random

import numpy as np
from PIL import Image
from tokenizers import Tokenizer

from . import synthetic
from .numerics import cosine, max_rel_diff, session
from .prompts import TASK_PROMPTS_WITHOUT_INPUT

GRAPHS = ("vision_encoder", "embed_tokens", "encoder_model", "decoder_model_merged")
CHECK_STEPS = 20


def pixel_values(img: Image.Image, pre: dict, size: int | None = None) -> np.ndarray:
    """CLIP preprocessing as transformers' PIL image processor does it (RGB, bicubic, normalise)."""
    w = size or pre["size"]["width"]
    h = size or pre["size"]["height"]
    img = img.convert("RGB").resize((w, h), Image.BICUBIC)
    x = np.asarray(img, dtype=np.float32) * np.float32(pre["rescale_factor"])
    x = (x - np.array(pre["image_mean"], np.float32)) / np.array(pre["image_std"], np.float32)
    return x.transpose(2, 0, 1)[None].astype(np.float32)


def scenes(n: int, seed: int) -> list[Image.Image]:
    """Synthetic scenes (the tiny model's training world) of assorted sizes."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        w, h = rng.choice([(640, 480), (768, 768), (1024, 576), (480, 640)])
        out.append(synthetic.render(synthetic.random_scene(rng, w, h)))
    return out


class Model:
    """The four graphs of one variant of a model directory."""

    def __init__(self, model_dir: str, suffix: str, threads: int = 2):
        onnx_dir = os.path.join(model_dir, "onnx")
        self.sessions = {g: session(os.path.join(onnx_dir, f"{g}{suffix}.onnx"), threads) for g in GRAPHS}
        self.types = {g: {i.name: np.float16 if i.type == "tensor(float16)" else np.float32 for i in s.get_inputs()}
                      for g, s in self.sessions.items()}
        cfg = json.load(open(os.path.join(model_dir, "config.json")))["text_config"]
        self.layers = cfg["decoder_layers"]
        self.heads = cfg["decoder_attention_heads"]
        self.head_dim = cfg["d_model"] // self.heads
        self.outputs = [o.name for o in self.sessions["decoder_model_merged"].get_outputs()]

    def run(self, graph: str, feed: dict) -> list[np.ndarray]:
        types = self.types[graph]
        feed = {k: v.astype(types[k]) if v.dtype.kind == "f" else v for k, v in feed.items()}
        return [o.astype(np.float32) for o in self.sessions[graph].run(None, feed)]

    def encode(self, pv: np.ndarray, prompt: list[int], feats: np.ndarray | None = None):
        if feats is None:
            (feats,) = self.run("vision_encoder", {"pixel_values": pv})
        (text,) = self.run("embed_tokens", {"input_ids": np.array([prompt], np.int64)})
        embeds = np.concatenate([feats, text], axis=1)
        mask = np.ones(embeds.shape[:2], np.int64)
        (hidden,) = self.run("encoder_model", {"attention_mask": mask, "inputs_embeds": embeds})
        return feats, text, embeds, hidden

    def decode(self, hidden: np.ndarray, steps: int, forced: list[int] | None = None, embed=None):
        """Logits rows of `steps` greedy steps from the start token 2; with `forced`, the
        tokens fed are forced's (teacher forcing) instead of this model's choices.
        `embed` embeds a token (default: this model's embed_tokens)."""
        embed = embed or (lambda t: self.run("embed_tokens", {"input_ids": np.array([[t]], np.int64)})[0])
        mask = np.ones(hidden.shape[:2], np.int64)
        empty = np.zeros((1, self.heads, 0, self.head_dim), np.float32)
        past = {n.replace("present", "past_key_values"): empty for n in self.outputs[1:]}
        token, rows, chosen = 2, [], []
        for step in range(steps):
            feed = {"encoder_attention_mask": mask, "encoder_hidden_states": hidden,
                    "inputs_embeds": embed(token), "use_cache_branch": np.array([step > 0]), **past}
            outs = self.run("decoder_model_merged", feed)
            for name, value in zip(self.outputs[1:], outs[1:]):
                if step == 0 or ".decoder." in name:  # later encoder presents are placeholders
                    past[name.replace("present", "past_key_values")] = value
            rows.append(outs[0][0, -1])
            chosen.append(int(np.argmax(rows[-1])))
            token = forced[step] if forced is not None else chosen[-1]
        return np.stack(rows), chosen


def caption_prompt(model_dir: str) -> list[int]:
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    return tok.encode(f"<s>{TASK_PROMPTS_WITHOUT_INPUT['<CAPTION>']}</s>", add_special_tokens=False).ids


class Reference:
    """float32's outputs on the check images, computed once for all variants."""

    def __init__(self, model_dir: str, images: list[Image.Image], threads: int = 2):
        self.model_dir = model_dir
        self.pre = json.load(open(os.path.join(model_dir, "preprocessor_config.json")))
        self.prompt = caption_prompt(model_dir)
        m = Model(model_dir, "", threads)
        self.cases = []
        for img in images:
            pv = pixel_values(img, self.pre)
            feats, text, embeds, hidden = m.encode(pv, self.prompt)
            logits, tokens = m.decode(hidden, CHECK_STEPS)
            tok_embeds = {t: m.run("embed_tokens", {"input_ids": np.array([[t]], np.int64)})[0]
                          for t in {2, *tokens}}
            self.cases.append(dict(pv=pv, feats=feats, text=text, embeds=embeds, hidden=hidden, logits=logits,
                                   tokens=tokens, tok_embeds=tok_embeds))


def compare(ref: Reference, suffix: str, threads: int = 2) -> dict:
    """Figures of variant `suffix` against float32 (see the module comment)."""
    m = Model(ref.model_dir, suffix, threads)
    worst = {g: {"max_rel_diff": 0.0, "cosine": 1.0} for g in GRAPHS}
    graph_agree = tokens_agree = steps = 0

    def note(graph: str, got: np.ndarray, want: np.ndarray) -> None:
        w = worst[graph]
        w["max_rel_diff"] = max(w["max_rel_diff"], max_rel_diff(got, want))
        w["cosine"] = min(w["cosine"], cosine(got, want))

    for c in ref.cases:
        (feats,) = m.run("vision_encoder", {"pixel_values": c["pv"]})
        note("vision_encoder", feats, c["feats"])
        note("embed_tokens", m.run("embed_tokens", {"input_ids": np.array([ref.prompt], np.int64)})[0], c["text"])
        mask = np.ones(c["embeds"].shape[:2], np.int64)
        note("encoder_model", m.run("encoder_model", {"attention_mask": mask, "inputs_embeds": c["embeds"]})[0],
             c["hidden"])
        # The decoder alone: float32's encoder states and token embeddings.
        logits, chosen = m.decode(c["hidden"], CHECK_STEPS, c["tokens"], embed=lambda t: c["tok_embeds"][t])
        note("decoder_model_merged", logits, c["logits"])
        graph_agree += sum(a == b for a, b in zip(chosen, c["tokens"]))
        # The whole variant pipeline, teacher-forced along float32's tokens.
        _, _, _, hidden = m.encode(c["pv"], ref.prompt, feats)
        _, chosen = m.decode(hidden, CHECK_STEPS, c["tokens"])
        tokens_agree += sum(a == b for a, b in zip(chosen, c["tokens"]))
        steps += len(c["tokens"])
    return {"graphs": worst, "decoder_alone_token_agreement": graph_agree / steps,
            "token_agreement": tokens_agree / steps, "steps": steps}
