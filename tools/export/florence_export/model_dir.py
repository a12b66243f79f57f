"""Checkpoint -> model directory in the onnx-community layout (+ Hailo-split artefacts)."""

from __future__ import annotations

import json
import os

import numpy as np
import torch
from transformers.modeling_outputs import BaseModelOutput

from . import batched, configs, graphs, hailo_standin, variants
from .onnx_export import ONNX_BOUND, check, export_module, merge_decoders, save, session

# Bounds on the max difference relative to the largest reference magnitude.
WRAPPER_BOUND = 1e-5  # our export modules vs transformers' own forward (same ops, same order: ~1e-7)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _dump(obj, path: str) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def sample_inputs(model, image_size: int, prompt_len: int = 9, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    pv = torch.randn(1, 3, image_size, image_size, generator=g)
    vocab = model.config.text_config.vocab_size
    ids = torch.randint(4, vocab - 1, (1, prompt_len), generator=g)
    ids[0, 0], ids[0, -1] = 0, 2
    return pv, ids


def verify_wrappers(model, image_size: int, log=print) -> dict:
    """Our export modules against transformers' Florence2ForConditionalGeneration."""
    log("checking export modules against transformers")
    figures = {}
    pv, ids = sample_inputs(model, image_size)
    with torch.no_grad():
        vis = graphs.VisionEncoder(model)
        ref = model.model.get_image_features(pixel_values=pv).pooler_output
        figures["vision_encoder"] = check("vision_encoder vs transformers", _np(vis(pv)), _np(ref), WRAPPER_BOUND, log)

        embeds = torch.cat([ref, model.get_input_embeddings()(ids)], dim=1)
        mask = torch.ones(embeds.shape[:2], dtype=torch.int64)
        enc_ref = model.model.language_model.encoder(attention_mask=mask, inputs_embeds=embeds).last_hidden_state
        enc = graphs.TextEncoder(model)(mask, embeds)
        figures["encoder"] = check("encoder vs transformers", _np(enc), _np(enc_ref), WRAPPER_BOUND, log)

        dec_ids = torch.tensor([[2, 0, 10, 11, 12, 13]])
        full = model(
            encoder_outputs=BaseModelOutput(last_hidden_state=enc_ref), attention_mask=mask, decoder_input_ids=dec_ids, use_cache=False
        ).logits
        emb = model.get_input_embeddings()
        no_past = graphs.Decoder(model, with_past=False)
        with_past = graphs.Decoder(model, with_past=True)
        out = no_past(mask, enc_ref, emb(dec_ids[:, :2]))
        logits = [out[0]]
        past = list(out[1:])
        for t in range(2, dec_ids.shape[1]):
            out = with_past(mask, enc_ref, emb(dec_ids[:, t : t + 1]), *past)
            logits.append(out[0])
            # Decoder K/V grow; encoder K/V stay those of the first step.
            for i in range(len(past) // 4):
                past[4 * i], past[4 * i + 1] = out[1 + 4 * i], out[2 + 4 * i]
        ours = torch.cat(logits, dim=1)
        figures["decoder"] = check("decoder (cached steps) vs transformers", _np(ours), _np(full), WRAPPER_BOUND, log)
    return figures


def export_model_dir(model, tokenizer_json: str, tokenizer_config: dict, out: str, image_size: int,
                     mean, std, hailo_image_size: int, caption_ids: list[int], vqa_prefix_ids: list[int],
                     precisions: tuple[str, ...] = ("fp16",), log=print) -> dict:
    """Writes `out/` and returns the verification figures."""
    model.eval()
    cfg = model.config
    text = cfg.text_config
    layers = text.decoder_layers
    heads = text.decoder_attention_heads
    d = text.d_model
    dh = d // heads
    onnx_dir = os.path.join(out, "onnx")
    os.makedirs(onnx_dir, exist_ok=True)
    figures = {"wrappers": verify_wrappers(model, image_size, log)}
    log("exporting ONNX graphs")

    pv, ids = sample_inputs(model, image_size, seed=1)
    vis = graphs.VisionEncoder(model).eval()
    m = export_module(vis, [pv], ["pixel_values"], ["image_features"],
                      {"pixel_values": {0: "batch_size", 2: "height", 3: "width"},
                       "image_features": {0: "batch_size", 1: "num_image_tokens"}})
    save(m, os.path.join(onnx_dir, "vision_encoder.onnx"))

    emb = graphs.EmbedTokens(model).eval()
    m = export_module(emb, [ids], ["input_ids"], ["inputs_embeds"],
                      {"input_ids": {0: "batch_size", 1: "sequence_length"},
                       "inputs_embeds": {0: "batch_size", 1: "sequence_length"}})
    save(m, os.path.join(onnx_dir, "embed_tokens.onnx"))

    with torch.no_grad():
        feats = vis(pv)
        embeds = torch.cat([feats, emb(ids)], dim=1)
    mask = torch.ones(embeds.shape[:2], dtype=torch.int64)
    enc = graphs.TextEncoder(model).eval()
    m = export_module(enc, [mask, embeds], ["attention_mask", "inputs_embeds"], ["last_hidden_state"],
                      {"attention_mask": {0: "batch_size", 1: "encoder_sequence_length"},
                       "inputs_embeds": {0: "batch_size", 1: "encoder_sequence_length"},
                       "last_hidden_state": {0: "batch_size", 1: "encoder_sequence_length"}})
    save(m, os.path.join(onnx_dir, "encoder_model.onnx"))

    with torch.no_grad():
        hidden = enc(mask, embeds)
    present_names, past_names = [], []
    for i in range(layers):
        for kind in ("decoder", "encoder"):
            for kv in ("key", "value"):
                present_names.append(f"present.{i}.{kind}.{kv}")
                past_names.append(f"past_key_values.{i}.{kind}.{kv}")
    # Order of Decoder's outputs/past: per layer decoder.key, decoder.value, encoder.key, encoder.value.
    dec_axes = {
        "encoder_attention_mask": {0: "batch_size", 1: "encoder_sequence_length"},
        "encoder_hidden_states": {0: "batch_size", 1: "encoder_sequence_length"},
        "inputs_embeds": {0: "batch_size", 1: "decoder_sequence_length"},
        "logits": {0: "batch_size", 1: "decoder_sequence_length"},
    }
    for name in present_names:
        length = "encoder_sequence_length_out" if ".encoder." in name else "past_decoder_sequence_length + 1"
        dec_axes[name] = {0: "batch_size", 2: length}
    dec_in = ["encoder_attention_mask", "encoder_hidden_states", "inputs_embeds"]
    no_past = graphs.Decoder(model, with_past=False).eval()
    step0 = torch.tensor([[2, 0]])
    with torch.no_grad():
        first = no_past(mask, hidden, emb(step0))
    m_np = export_module(no_past, [mask, hidden, emb(step0)], dec_in, ["logits"] + present_names, dec_axes)
    with_past = graphs.Decoder(model, with_past=True).eval()
    past_axes = dict(dec_axes)
    for name in past_names:
        length = "encoder_sequence_length" if ".encoder." in name else "past_decoder_sequence_length"
        past_axes[name] = {0: "batch_size", 2: length}
    for name in present_names:
        if ".encoder." in name:
            past_axes[name] = {0: "batch_size", 2: "encoder_sequence_length_out"}
    step1 = torch.tensor([[7]])
    m_wp = export_module(with_past, [mask, hidden, emb(step1), *first[1:]], dec_in + past_names,
                         ["logits"] + present_names, past_axes)
    merged = merge_decoders(m_np, m_wp)
    save(merged, os.path.join(onnx_dir, "decoder_model_merged.onnx"))

    figures["onnx"] = verify_onnx(model, onnx_dir, image_size, layers, heads, dh, log)
    figures["batched"] = batched.add(model, onnx_dir, log)

    # Config files in the public export's layout, and the tokenizer.
    _dump(configs.model_config(cfg, image_size), os.path.join(out, "config.json"))
    _dump(configs.generation_config(cfg), os.path.join(out, "generation_config.json"))
    _dump(configs.preprocessor_config(image_size, mean, std), os.path.join(out, "preprocessor_config.json"))
    with open(os.path.join(out, "tokenizer.json"), "w") as f:
        f.write(json.dumps(json.loads(tokenizer_json), indent=2, ensure_ascii=False) + "\n")
    _dump(tokenizer_config, os.path.join(out, "tokenizer_config.json"))

    figures["hailo"] = export_hailo(model, out, hailo_image_size, caption_ids, vqa_prefix_ids, log)
    # Variants last: their checks read the configuration and tokenizer written above.
    if precisions:
        figures["variants"] = variants.write_variants(out, list(precisions), log=log)
    return figures


def verify_onnx(model, onnx_dir: str, image_size: int, layers: int, heads: int, dh: int, log=print) -> dict:
    """Runs the written graphs with ONNX Runtime on fresh inputs and compares with PyTorch."""
    log("checking ONNX graphs against PyTorch")
    figures = {}
    pv, ids = sample_inputs(model, image_size, prompt_len=12, seed=2)
    s_vis = session(os.path.join(onnx_dir, "vision_encoder.onnx"))
    s_emb = session(os.path.join(onnx_dir, "embed_tokens.onnx"))
    s_enc = session(os.path.join(onnx_dir, "encoder_model.onnx"))
    s_dec = session(os.path.join(onnx_dir, "decoder_model_merged.onnx"))
    with torch.no_grad():
        feats = graphs.VisionEncoder(model)(pv)
        figures["vision_encoder"] = check("vision_encoder.onnx", s_vis.run(None, {"pixel_values": _np(pv)})[0],
                                          _np(feats), ONNX_BOUND, log)
        # A second, non-square size: the graph must be size-dynamic.
        pv2 = pv[:, :, : image_size // 2, :]
        figures["vision_encoder_half_height"] = check(
            "vision_encoder.onnx (half height)", s_vis.run(None, {"pixel_values": _np(pv2)})[0],
            _np(graphs.VisionEncoder(model)(pv2)), ONNX_BOUND, log)
        te = model.get_input_embeddings()(ids)
        figures["embed_tokens"] = check("embed_tokens.onnx", s_emb.run(None, {"input_ids": _np(ids)})[0], _np(te),
                                        ONNX_BOUND, log)
        embeds = torch.cat([feats, te], dim=1)
        mask = torch.ones(embeds.shape[:2], dtype=torch.int64)
        mask[0, -3:] = 0  # padding positions must be ignored the same way
        hidden = graphs.TextEncoder(model)(mask, embeds)
        got = s_enc.run(None, {"attention_mask": _np(mask), "inputs_embeds": _np(embeds)})[0]
        figures["encoder_model"] = check("encoder_model.onnx", got, _np(hidden), ONNX_BOUND, log)

        emb = model.get_input_embeddings()
        no_past = graphs.Decoder(model, with_past=False)
        with_past = graphs.Decoder(model, with_past=True)
        feed = {"encoder_attention_mask": _np(mask), "encoder_hidden_states": _np(hidden),
                "use_cache_branch": np.array([False])}
        for i in range(layers):
            for kind in ("decoder", "encoder"):
                for kv in ("key", "value"):
                    feed[f"past_key_values.{i}.{kind}.{kv}"] = np.zeros((1, heads, 0, dh), np.float32)
        tokens = [2, 0, 15, 16, 17, 18, 19]
        feed["inputs_embeds"] = _np(emb(torch.tensor([tokens[:1]])))
        outs = s_dec.run(None, feed)
        ref = no_past(mask, hidden, emb(torch.tensor([tokens[:1]])))
        worst = check("decoder_model_merged.onnx step 0 (no cache)", outs[0], _np(ref[0]), ONNX_BOUND, log)
        names = [o.name for o in s_dec.get_outputs()]
        enc_kv = {n: outs[j] for j, n in enumerate(names) if ".encoder." in n}
        past_t = list(ref[1:])
        for step, tok in enumerate(tokens[1:], start=1):
            feed["use_cache_branch"] = np.array([True])
            for j, n in enumerate(names[1:], start=1):
                key = n.replace("present", "past_key_values")
                feed[key] = enc_kv[n] if ".encoder." in n else outs[j]
            feed["inputs_embeds"] = _np(emb(torch.tensor([[tok]])))
            outs = s_dec.run(None, feed)
            ref = with_past(mask, hidden, emb(torch.tensor([[tok]])), *past_t)
            for i in range(layers):
                past_t[4 * i], past_t[4 * i + 1] = ref[1 + 4 * i], ref[2 + 4 * i]
            worst = max(worst, check(f"decoder_model_merged.onnx step {step} (cache)", outs[0], _np(ref[0]),
                                     ONNX_BOUND, log))
        figures["decoder_model_merged"] = worst
    return figures


def export_hailo(model, out: str, image_size: int, caption_ids: list[int], vqa_prefix_ids: list[int],
                 log=print) -> dict:
    """Artefacts of Hailo's dynamic_captioning split, with static ONNX stand-ins for the HEFs."""
    log(f"exporting Hailo-split artefacts at {image_size}x{image_size}")
    hdir = os.path.join(out, "hailo")
    os.makedirs(hdir, exist_ok=True)
    emb = model.get_input_embeddings()
    d = model.config.text_config.d_model
    with torch.no_grad():
        cap = emb(torch.tensor([caption_ids]))[None]  # [1,1,P,D]
        vqa = emb(torch.tensor([vqa_prefix_ids]))[None]
        table = emb.weight.detach().clone()
    np.save(os.path.join(hdir, "caption_embedding.npy"), _np(cap).astype(np.float32))
    np.save(os.path.join(hdir, "vqa_embedding.npy"), _np(vqa).astype(np.float32))
    np.save(os.path.join(hdir, "word_embedding.npy"), _np(table).astype(np.float32))
    n = (image_size // 32) ** 2 + 1 + len(caption_ids)
    window = 32
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 1, n, d, generator=g)
    te = graphs.HailoTextEncoder(model).eval()
    export_module(te, [x], ["inputs_embeds"], ["last_hidden_state"], None,
                  os.path.join(hdir, "text_encoder.onnx"))
    with torch.no_grad():
        hs = te(x)
    win = torch.zeros(1, 1, window, d)
    win[0, 0, :3] = table[[2, 0, 5]]
    hd = graphs.HailoDecoder(model).eval()
    export_module(hd, [hs, win], ["encoder_hidden_states", "inputs_embeds"], ["logits"], None,
                  os.path.join(hdir, "decoder.onnx"))
    figures = {}
    with torch.no_grad():
        figures["text_encoder"] = check("hailo/text_encoder.onnx",
                                        session(os.path.join(hdir, "text_encoder.onnx")).run(None, {"inputs_embeds": _np(x)})[0],
                                        _np(hs), ONNX_BOUND, log)
        got = session(os.path.join(hdir, "decoder.onnx")).run(
            None, {"encoder_hidden_states": _np(hs), "inputs_embeds": _np(win)})[0]
        figures["decoder"] = check("hailo/decoder.onnx", got, _np(hd(hs, win)), ONNX_BOUND, log)
    _dump({
        "image_size": image_size,
        "window": window,
        "text_encoder": {"input": "inputs_embeds", "shape": [1, 1, n, d], "output": "last_hidden_state"},
        "decoder": {"inputs": {"encoder_hidden_states": [1, 1, n, d], "inputs_embeds": [1, 1, window, d]},
                    "output": "logits"},
        "caption_embedding": {"token_ids": caption_ids, "shape": list(cap.shape)},
        "vqa_embedding": {"token_ids": vqa_prefix_ids, "shape": list(vqa.shape),
                          "meaning": "embeddings of the VQA prompt prefix; the question follows it"},
        "word_embedding": {"shape": list(table.shape)},
    }, os.path.join(hdir, "hailo_split.json"))
    hailo_standin.write(hdir, n, d, window, table.shape[0])
    return figures
