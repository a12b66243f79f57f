"""A plain onnxruntime-Python Florence-2 over the four graphs of a model
directory (onnx-community layout): the peer the engine must beat with the same
graphs, library and thread count.

Greedy decoding with the logits processors of Florence-2's generation config as
transformers applies them (no-repeat 3-grams, forced BOS after the start token,
forced EOS at the last position, EOS suppressed before `min_new_tokens`), so
its ids can be compared with transformers'. Nothing clever: the KV cache goes
back and forth through numpy each step, as a first port would do it.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort
from PIL import Image
from tokenizers import Tokenizer

from protocol import ms

GRAPHS = ("vision_encoder", "embed_tokens", "encoder_model", "decoder_model_merged")

# Florence2Processor's prompts for the tasks without input, from the exporter
# (enough for benchmarks; the correctness check passes the reference's prompt ids).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "export"))
from florence_export.prompts import TASK_PROMPTS_WITHOUT_INPUT as PROMPTS  # noqa: E402


def graph_files(model_dir: str, variant: str) -> list[str]:
    return [os.path.join(model_dir, "onnx", f"{g}{variant}.onnx") for g in GRAPHS]


def to_rgb(img: Image.Image) -> Image.Image:
    """transformers' convert_to_rgb: anything not RGB goes over opaque white."""
    if img.mode == "RGB":
        return img
    rgba = img.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255)), rgba).convert("RGB")


class OrtFlorence:
    def __init__(self, model_dir: str, variant: str = "", threads: int = 2, image_size: int | None = None,
                 profile_prefix: str | None = None):
        so = ort.SessionOptions()
        if profile_prefix:  # op_profile.py: ONNX Runtime's per-node profile, one file per graph
            so.enable_profiling = True
            so.profile_file_prefix = profile_prefix
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        self.vision, self.embed, self.encoder, self.decoder = (
            ort.InferenceSession(p, so, providers=["CPUExecutionProvider"]) for p in graph_files(model_dir, variant))
        load = lambda name: json.load(open(os.path.join(model_dir, name)))  # noqa: E731
        self.config = load("config.json")
        self.gen = load("generation_config.json")
        self.pre = load("preprocessor_config.json")
        if image_size:  # the engine's `image_size` option: another square input size
            self.pre["size"] = {"height": image_size, "width": image_size}
        self.tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        t = self.config["text_config"]
        self.heads = t["decoder_attention_heads"]
        self.head_dim = t["d_model"] // self.heads
        self.layers = t["decoder_layers"]
        # fp16 variants take and give float16: cast at the boundary, as read from the sessions.
        self.float_type = {s: {i.name: np.float16 if i.type == "tensor(float16)" else np.float32
                               for i in s.get_inputs()}
                           for s in (self.vision, self.embed, self.encoder, self.decoder)}
        self.dec_inputs = [i.name for i in self.decoder.get_inputs()]
        self.dec_outputs = [o.name for o in self.decoder.get_outputs()]

    def sessions(self) -> dict:
        return {"vision": self.vision, "embed": self.embed, "encoder": self.encoder, "decoder": self.decoder}

    def _feed(self, sess, feed: dict) -> dict:
        types = self.float_type[sess]
        return {k: v.astype(types[k]) if v.dtype.kind == "f" and v.dtype != types[k] else v for k, v in feed.items()}

    def pixel_values(self, img: Image.Image) -> np.ndarray:
        """CLIP preprocessing as transformers' PIL image processor does it."""
        size = self.pre["size"]
        img = to_rgb(img).resize((size["width"], size["height"]), Image.BICUBIC)
        x = np.asarray(img, dtype=np.float32) * np.float32(self.pre["rescale_factor"])
        x = (x - np.array(self.pre["image_mean"], np.float32)) / np.array(self.pre["image_std"], np.float32)
        return x.transpose(2, 0, 1)[None].astype(np.float32)

    def prompt_ids(self, task: str) -> list[int]:
        if task not in PROMPTS:
            raise ValueError(f"the onnxruntime loop builds prompts only for {sorted(PROMPTS)}; pass prompt_ids")
        return self.tokenizer.encode(f"<s>{PROMPTS[task]}</s>", add_special_tokens=False).ids

    def embed_ids(self, ids: list[int]) -> np.ndarray:
        (e,) = self.embed.run(None, {"input_ids": np.array([ids], dtype=np.int64)})
        return e.astype(np.float32)

    def generate(self, img: Image.Image, prompt_ids: list[int] | None, task: str,
                 max_new_tokens: int, min_new_tokens: int = 0) -> dict:
        t0 = time.perf_counter()
        pv = self.pixel_values(img)
        prompt = prompt_ids if prompt_ids is not None else self.prompt_ids(task)
        t1 = time.perf_counter()
        (feats,) = self.vision.run(None, self._feed(self.vision, {"pixel_values": pv}))
        t2 = time.perf_counter()
        embeds = np.concatenate([feats.astype(np.float32), self.embed_ids(prompt)], axis=1)
        mask = np.ones(embeds.shape[:2], dtype=np.int64)
        (hidden,) = self.encoder.run(None, self._feed(self.encoder, {"attention_mask": mask, "inputs_embeds": embeds}))
        t3 = time.perf_counter()
        ids, margins, step_ends = self._decode(hidden, mask, max_new_tokens, min_new_tokens)
        t4 = time.perf_counter()
        text = self.tokenizer.decode(ids, skip_special_tokens=False)
        t5 = time.perf_counter()
        steps = len(ids) - 1
        return {
            "ids": ids,
            "token_count": steps,
            "text": text,
            "margins": margins,
            "timings": {
                "preprocess_ms": ms(t0, t1),
                "vision_ms": ms(t1, t2),
                "encoder_ms": ms(t2, t3),
                "first_token_ms": ms(t3, step_ends[0]),
                "per_token_ms": ms(step_ends[0], t4) / (steps - 1) if steps > 1 else 0.0,
                "decode_ms": ms(t3, t4),
                "postprocess_ms": ms(t4, t5),
                "total_ms": ms(t0, t5),
            },
        }

    def _decode(self, hidden, mask, max_new_tokens: int, min_new_tokens: int):
        start = self.gen.get("decoder_start_token_id", 2)
        eos = self.gen.get("eos_token_id", 2)
        forced_bos = self.gen.get("forced_bos_token_id")
        forced_eos = self.gen.get("forced_eos_token_id")
        ngram = self.gen.get("no_repeat_ngram_size", 0)
        max_length = max_new_tokens + 1  # the start token counts, as in transformers
        empty = np.zeros((1, self.heads, 0, self.head_dim), np.float32)
        past = {n: empty for n in self.dec_inputs if n.startswith("past_key_values.")}
        ids = [start]
        margins: list[float | None] = []
        step_ends = []
        first = True
        while True:
            feed = {"encoder_attention_mask": mask, "encoder_hidden_states": hidden,
                    "inputs_embeds": self.embed_ids(ids[-1:]), "use_cache_branch": np.array([not first]), **past}
            outs = self.decoder.run(None, self._feed(self.decoder, feed))
            for name, value in zip(self.dec_outputs[1:], outs[1:]):
                # Later steps' encoder presents are placeholders: keep the first step's.
                if first or ".decoder." in name:
                    past[name.replace("present", "past_key_values")] = value
            first = False
            scores = outs[0][0, -1].astype(np.float32).copy()
            cur = len(ids)
            if ngram and cur + 1 >= ngram:
                prefix = tuple(ids[cur + 1 - ngram:])
                for i in range(cur + 1 - ngram):
                    if tuple(ids[i:i + ngram - 1]) == prefix:
                        scores[ids[i + ngram - 1]] = -np.inf
            if cur - 1 < min_new_tokens:
                scores[eos] = -np.inf
            if forced_bos is not None and cur == 1:
                scores[:] = -np.inf
                scores[forced_bos] = 0
            if forced_eos is not None and cur == max_length - 1:
                scores[:] = -np.inf
                scores[forced_eos] = 0
            top2 = np.partition(scores, -2)[-2:]
            margin = float(top2[1] - top2[0])
            margins.append(margin if np.isfinite(margin) else None)
            tok = int(np.argmax(scores))
            ids.append(tok)
            step_ends.append(time.perf_counter())
            if tok == eos or len(ids) >= max_length:
                return ids, margins, step_ends
