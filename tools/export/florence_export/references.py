"""Fixture images and reference outputs recorded with transformers.

For each fixture image and each Florence-2 task (plus VQA) it records the
prompt's input ids, the pixel tensor's checksum and sample values, greedy and
3-beam generations (ids, decoded text, `post_process_generation`), each greedy
step's margin between the best and second-best processed score, and the
Hailo-split 32-token window loop's tokens.
"""

from __future__ import annotations

import hashlib
import json
import os
import random

import numpy as np
import torch
from PIL import Image
from transformers import CLIPImageProcessorPil, Florence2Processor, GenerationConfig

from . import graphs, synthetic

MAX_NEW_TOKENS = 160
SAMPLE_INDICES = [0, 1, 777, 12345, 99999, 300000, 589823, 1769471]


def fixture_images(seed: int) -> list[tuple[str, Image.Image, synthetic.Scene | None]]:
    """Deterministic images: scenes, odd sizes, grayscale and RGBA sources, text, patterns."""
    rng = random.Random(seed)
    out = []

    def scene(name, w, h, min_objects=1, want_text=False):
        for _ in range(1000):
            s = synthetic.random_scene(rng, w, h)
            if len(s.objects) >= min_objects and (s.text is not None or not want_text):
                out.append((name, synthetic.render(s), s))
                return s
        raise RuntimeError(f"could not draw scene {name}")

    scene("scene_640x480", 640, 480, min_objects=2, want_text=True)
    scene("scene_768x768", 768, 768, min_objects=3)
    scene("scene_300x200", 300, 200, min_objects=1)
    scene("scene_1024x576", 1024, 576, min_objects=2)
    s = scene("wide_1000x37", 1000, 37)
    s = scene("tall_37x1000", 37, 1000)
    out.append(("pixel_1x1", Image.new("RGB", (1, 1), (200, 30, 30)), None))
    name, img, sc = "gray_320x240", None, None
    s = synthetic.random_scene(rng, 320, 240)
    out.append(("gray_320x240", synthetic.render(s).convert("L"), s))
    s = synthetic.random_scene(rng, 256, 256)
    rgba = synthetic.render(s).convert("RGBA")
    alpha = Image.linear_gradient("L").resize((256, 256))
    rgba.putalpha(alpha)
    out.append(("rgba_256x256", rgba, s))
    for _ in range(1000):
        s = synthetic.random_scene(rng, 512, 256)
        if s.text is not None:
            break
    out.append(("text_512x256", synthetic.render(s), s))
    yy, xx = np.mgrid[0:300, 0:200]
    checker = (((yy // 25) + (xx // 25)) % 2 * 255).astype(np.uint8)
    pattern = np.stack([checker, (xx * 255 // 199).astype(np.uint8), (yy * 255 // 299).astype(np.uint8)], -1)
    out.append(("pattern_200x300", Image.fromarray(pattern, "RGB"), None))
    return out


def task_inputs(task: str, img: Image.Image, scene: synthetic.Scene | None, quantize) -> dict:
    """The text input (and pixel region) for tasks that take one."""
    w, h = img.size
    obj = scene.objects[0] if scene and scene.objects else None
    if task in ("<REGION_TO_SEGMENTATION>", "<REGION_TO_CATEGORY>", "<REGION_TO_DESCRIPTION>", "<REGION_TO_OCR>"):
        if task == "<REGION_TO_OCR>" and scene and scene.text:
            box = scene.text.box
        elif obj:
            box = obj.box
        else:
            box = (0.1 * w, 0.2 * h, 0.6 * w, 0.9 * h)
        region = [float(round(v)) for v in box]
        q = quantize(torch.tensor([region]), (w, h))[0].tolist()
        return {"region": region, "text": "".join(f"<loc_{int(v)}>" for v in q)}
    if task == "<CAPTION_TO_PHRASE_GROUNDING>":
        return {"text": f"a {obj.name} on the background" if obj else "a red square on a blue background"}
    if task == "<REFERRING_EXPRESSION_SEGMENTATION>":
        return {"text": f"the {obj.name}" if obj else "the red square"}
    if task == "<OPEN_VOCABULARY_DETECTION>":
        return {"text": obj.shape if obj else "circle"}
    if task == synthetic.VQA_TASK:
        return {"text": f"What color is the {obj.shape}?" if obj else "What color is the background?"}
    return {}


def make_processor(hf_tok, image_size: int, mean, std, post_processor_config: dict) -> Florence2Processor:
    ip = CLIPImageProcessorPil(
        size={"height": image_size, "width": image_size},
        crop_size={"height": image_size, "width": image_size},
        do_center_crop=False,
        do_resize=True,
        do_rescale=True,
        do_normalize=True,
        rescale_factor=1 / 255,
        image_mean=list(mean),
        image_std=list(std),
        resample=3,
        do_convert_rgb=True,
    )
    ip.image_seq_length = (image_size // 32) ** 2 + 1
    return Florence2Processor(image_processor=ip, tokenizer=hf_tok, post_processor_config=post_processor_config)


def _margins(scores) -> list[float | None]:
    out = []
    for s in scores:
        top = torch.topk(s[0].float(), 2).values
        m = float(top[0] - top[1])
        out.append(m if np.isfinite(m) else None)
    return out


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, torch.Tensor):
        return _jsonable(x.tolist())
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    return x


def generation_config(gen: dict, num_beams: int) -> GenerationConfig:
    cfg = {k: v for k, v in gen.items() if not k.startswith("_") and k != "transformers_version"}
    cfg.update(num_beams=num_beams, do_sample=False, max_new_tokens=MAX_NEW_TOKENS)
    return GenerationConfig(**cfg)


def record(model, processor, gen: dict, out_dir: str, seed: int, hailo: dict, log=print) -> dict:
    """Writes images/*.png and references.json under out_dir; returns summary figures."""
    model.eval()
    img_dir = os.path.join(out_dir, "images")
    os.makedirs(img_dir, exist_ok=True)
    tasks = synthetic.ALL_TASKS + [synthetic.VQA_TASK]
    images = []
    cases = []
    quantize = processor.post_processor.quantize
    tok = processor.tokenizer
    image_token_id = processor.image_token_id
    for name, img, scene in fixture_images(seed):
        path = os.path.join(img_dir, f"{name}.png")
        img.save(path, optimize=False, compress_level=9)
        rgb = Image.open(path)
        rgb.load()
        pv = processor.image_processor(rgb, return_tensors="pt")["pixel_values"]
        flat = pv.flatten()
        images.append({
            "name": name,
            "file": f"images/{name}.png",
            "size": list(rgb.size),
            "mode": rgb.mode,
            "pixel_values": {
                "shape": list(pv.shape),
                "sum": float(flat.double().sum()),
                "abs_sum": float(flat.double().abs().sum()),
                "samples": {str(i): float(flat[i]) for i in SAMPLE_INDICES if i < flat.numel()},
                "sha256_f32": hashlib.sha256(pv.numpy().astype("<f4").tobytes()).hexdigest(),
            },
            "hailo_caption_ids": hailo_caption(model, processor, rgb, hailo),
        })
        for task in tasks:
            inp = task_inputs(task, rgb, scene, quantize)
            prompt = task + inp.get("text", "")
            enc = processor(text=prompt, images=rgb, return_tensors="pt")
            ids = enc["input_ids"][0]
            text_ids = ids[ids != image_token_id].tolist()
            case = {"image": name, "task": task, "prompt": prompt, **({"region": inp["region"]} if "region" in inp else {}),
                    "text_input": inp.get("text"), "input_ids": text_ids, "max_new_tokens": MAX_NEW_TOKENS}
            for label, beams in (("greedy", 1), ("beam3", 3)):
                with torch.no_grad():
                    res = model.generate(
                        input_ids=enc["input_ids"], pixel_values=enc["pixel_values"],
                        attention_mask=enc["attention_mask"], generation_config=generation_config(gen, beams),
                        output_scores=True, return_dict_in_generate=True,
                    )
                seq = res.sequences[0].tolist()
                text = processor.batch_decode([seq], skip_special_tokens=False)[0]
                parsed = processor.post_process_generation(text, task=task, image_size=rgb.size)
                entry = {"ids": seq, "text": text, "parsed": _jsonable(parsed[task])}
                if beams == 1:
                    entry["margins"] = _margins(res.scores)
                else:
                    entry["sequence_score"] = float(res.sequences_scores[0])
                case[label] = entry
            cases.append(case)
        log(f"  {name}: {cases[-1]['greedy']['text'][:80]!r}")
    return {"images": images, "cases": cases}


def hailo_caption(model, processor, img: Image.Image, hailo: dict) -> list[int]:
    """The 32-token static-window greedy loop of Hailo's dynamic_captioning, in PyTorch."""
    size = hailo["image_size"]
    window = hailo["window"]
    ip = processor.image_processor
    pv = ip(img, size={"height": size, "width": size}, return_tensors="pt")["pixel_values"]
    emb = model.get_input_embeddings().weight.detach()
    cap = emb[hailo["caption_ids"]][None]
    eos = model.config.text_config.eos_token_id
    start = model.config.text_config.decoder_start_token_id
    with torch.no_grad():
        feats = graphs.VisionEncoder(model)(pv)
        hidden = graphs.HailoTextEncoder(model)(torch.cat([feats, cap], dim=1)[None])
        dec = graphs.HailoDecoder(model)
        win = torch.zeros(1, 1, window, emb.shape[1])
        win[0, 0, 0] = emb[start]
        tokens = []
        for t in range(window):
            logits = dec(hidden, win)
            tok = int(torch.argmax(logits[0, t]))
            tokens.append(tok)
            if tok == eos or t + 1 >= window:
                break
            win[0, 0, t + 1] = emb[tok]
    return tokens


def summary(refs: dict) -> dict:
    """Average generated length and distinct sequences per task: the note's figures."""
    by_task: dict[str, list] = {}
    for c in refs["cases"]:
        by_task.setdefault(c["task"], []).append(c)
    out = {}
    for task, cases in by_task.items():
        g = [c["greedy"]["ids"] for c in cases]
        b = [c["beam3"]["ids"] for c in cases]
        out[task] = {
            "cases": len(cases),
            "greedy_avg_len": round(sum(map(len, g)) / len(g), 1),
            "greedy_distinct": len({tuple(x) for x in g}),
            "beam3_avg_len": round(sum(map(len, b)) / len(b), 1),
            "beam3_distinct": len({tuple(x) for x in b}),
            "greedy_ending_eos": sum(1 for x in g if x[-1] == 2),
            "greedy_with_loc": sum(1 for c in cases if "<loc_" in c["greedy"]["text"]),
        }
    hailo = [tuple(i["hailo_caption_ids"]) for i in refs["images"]]
    out["hailo_caption"] = {"cases": len(hailo), "distinct": len(set(hailo)),
                            "avg_len": round(sum(map(len, hailo)) / len(hailo), 1)}
    return out


def write_json(obj, path: str) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False)
        f.write("\n")
