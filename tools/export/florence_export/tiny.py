"""A tiny Florence-2 of the real architecture, trained briefly on the synthetic world.

A random-weight Florence-2 decodes the same tokens for every image, so parity
on it proves nothing. This module builds a small byte-level BPE tokenizer of
Florence-2's kind, a small `Florence2ForConditionalGeneration`, and trains it
for a few minutes so that its outputs depend on the image and the task.
"""

from __future__ import annotations

import json
import math
import os
import random
import time

import numpy as np
import torch
from PIL import Image
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import BartConfig, Florence2Config, Florence2ForConditionalGeneration, PreTrainedTokenizerFast
from transformers.models.florence2.configuration_florence2 import Florence2VisionConfig

from . import synthetic
from .prompts import TASK_PROMPTS_WITH_INPUT, TASK_PROMPTS_WITHOUT_INPUT, construct_prompt

# Florence-2's added tokens, in the order the original processor adds them.
FLORENCE_ADDED_TOKENS = (
    ["<od>", "</od>", "<ocr>", "</ocr>"]
    + [f"<loc_{i}>" for i in range(1000)]
    + [
        "<cap>", "</cap>", "<ncap>", "</ncap>", "<dcap>", "</dcap>", "<grounding>", "</grounding>",
        "<seg>", "</seg>", "<sep>", "<region_cap>", "</region_cap>", "<region_to_desciption>",
        "</region_to_desciption>", "<proposal>", "</proposal>", "<poly>", "</poly>", "<and>",
    ]
)  # fmt: skip
IMAGE_TOKEN = "<image>"
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]
# The tiny model's native input size (the real models use 768; every size is read
# from preprocessor_config.json, so the engine sees no difference). 384 keeps
# training to minutes and is also the size the Hailo split runs the vision encoder at.
IMAGE_SIZE = int(os.environ.get("FLORENCE_TINY_IMAGE_SIZE", 384))
D_MODEL = int(os.environ.get("FLORENCE_TINY_D_MODEL", 128))
LR = float(os.environ.get("FLORENCE_TINY_LR", 5e-4))
AUX_WEIGHT = float(os.environ.get("FLORENCE_TINY_AUX_WEIGHT", 1.0))
DEFAULT_STEPS = 2000
DEFAULT_BATCH = 16


def build_tokenizer(bpe_vocab_size: int = 600) -> Tokenizer:
    """Byte-level BPE with BART's pre/post-processing; ids 0-3 are <s>, <pad>, </s>, <unk>."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=bpe_vocab_size,
        min_frequency=2,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    lines = synthetic.corpus()
    lines += list(TASK_PROMPTS_WITHOUT_INPUT.values()) * 50
    lines += [p.replace("{input}", "") for p in TASK_PROMPTS_WITH_INPUT.values()] * 50
    tok.train_from_iterator(lines, trainer=trainer)
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", 2), ("<s>", 0), trim_offsets=True, add_prefix_space=False
    )
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True, normalized=False)])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in FLORENCE_ADDED_TOKENS])
    assert tok.token_to_id("<s>") == 0 and tok.token_to_id("<pad>") == 1
    assert tok.token_to_id("</s>") == 2 and tok.token_to_id("<unk>") == 3
    return tok


def tokenizer_config(tok: Tokenizer) -> dict:
    """tokenizer_config.json in the layout the public Florence-2 ONNX export ships."""
    added = {}
    for token_id, token in sorted(tok.get_added_tokens_decoder().items()):
        added[str(token_id)] = {
            "content": token.content,
            "lstrip": token.lstrip,
            "normalized": token.normalized,
            "rstrip": token.rstrip,
            "single_word": token.single_word,
            "special": token.special,
        }
    return {
        "add_prefix_space": False,
        "added_tokens_decoder": added,
        "additional_special_tokens": FLORENCE_ADDED_TOKENS,
        "bos_token": "<s>",
        "clean_up_tokenization_spaces": False,
        "cls_token": "<s>",
        "eos_token": "</s>",
        "errors": "replace",
        "mask_token": "<mask>",
        "model_max_length": 1024,
        "pad_token": "<pad>",
        "processor_class": "Florence2Processor",
        "sep_token": "</s>",
        "tokenizer_class": "BartTokenizer",
        "unk_token": "<unk>",
    }


def hf_tokenizer(tok: Tokenizer) -> PreTrainedTokenizerFast:
    """The tokenizer as transformers' Florence2Processor wants it (with the <image> placeholder)."""
    inner = Tokenizer.from_str(tok.to_str())
    inner.add_special_tokens([AddedToken(IMAGE_TOKEN, special=True, normalized=False)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=inner,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        cls_token="<s>",
        sep_token="</s>",
        mask_token="<mask>",
        extra_special_tokens={"image_token": IMAGE_TOKEN},
        clean_up_tokenization_spaces=False,
        model_max_length=1024,
    )
    fast.add_special_tokens({"additional_special_tokens": FLORENCE_ADDED_TOKENS}, replace_extra_special_tokens=False)
    return fast


def tiny_config(vocab_size: int, image_token_id: int) -> Florence2Config:
    d_model = D_MODEL
    vision = Florence2VisionConfig(
        depths=[1, 1, 1, 1],
        patch_size=[7, 3, 3, 3],
        patch_stride=[4, 2, 2, 2],
        patch_padding=[3, 1, 1, 1],
        patch_prenorm=[False, True, True, True],
        embed_dim=[16, 32, 64, 128],
        num_heads=[1, 2, 4, 8],
        num_groups=[1, 2, 4, 8],
        window_size=12,
        drop_path_rate=0.0,
        projection_dim=d_model,
        max_position_embeddings=50,
        max_temporal_embeddings=100,
    )
    text = BartConfig(
        vocab_size=vocab_size,
        d_model=d_model,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=2 * d_model,
        decoder_ffn_dim=2 * d_model,
        max_position_embeddings=1024,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        activation_function="gelu",
        scale_embedding=False,
        bos_token_id=0,
        pad_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=2,
        forced_bos_token_id=0,
        forced_eos_token_id=2,
        is_encoder_decoder=True,
        tie_word_embeddings=True,
    )
    return Florence2Config(
        text_config=text.to_dict(),
        vision_config=vision.to_dict(),
        image_token_id=image_token_id,
        bos_token_id=0,
        pad_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=2,
    )


def pixel_tensor(img: Image.Image, size: int) -> torch.Tensor:
    """The Florence-2 preprocessing (resize straight to size, bicubic, rescale, normalise)."""
    arr = np.asarray(img.convert("RGB").resize((size, size), Image.BICUBIC), dtype=np.float32) / 255.0
    arr = (arr - np.array(MEAN, dtype=np.float32)) / np.array(STD, dtype=np.float32)
    return torch.from_numpy(arr.transpose(2, 0, 1).copy())


# Tasks whose answer is short and entirely image-dependent: they teach the
# encoder and cross-attention to carry the image before the long templates do.
WARMUP_TASKS = [synthetic.VQA_TASK, synthetic.VQA_TASK, synthetic.VQA_TASK, "<REGION_TO_DESCRIPTION>", "<REGION_TO_CATEGORY>", "<OCR>",
                "<CAPTION>"]


OCR_TASKS = ("<OCR>", "<OCR_WITH_REGION>", "<REGION_TO_OCR>")


def make_batch(rng, tok: PreTrainedTokenizerFast, batch: int, size: int, num_image_tokens: int, tasks=None,
               ocr_needs_text: bool = False):
    tasks = tasks or synthetic.ALL_TASKS + [synthetic.VQA_TASK]
    pixels, prompts, targets, aux = [], [], [], []
    colors = list(synthetic.COLORS)
    while len(pixels) < batch:
        w = rng.choice([size, 640, 480, 320, 800, 256, 1000, 64])
        h = rng.choice([size, 480, 640, 240, 600, 256, 1000, 64])
        scene = synthetic.random_scene(rng, w, h)
        task = rng.choice(tasks)
        if ocr_needs_text and task in OCR_TASKS and scene.text is None:
            continue
        sample = synthetic.task_sample(rng, scene, task)
        if sample is None:
            continue
        prompt, target = sample
        pixels.append(pixel_tensor(synthetic.render(scene), size))
        prompts.append(construct_prompt(prompt))
        targets.append(target)
        first = scene.objects[0] if scene.objects else None
        aux.append([
            colors.index(scene.background),
            colors.index(first.color) if first else len(colors),
            synthetic.SHAPES.index(first.shape) if first else len(synthetic.SHAPES),
            int(scene.text is not None),
        ])
    image_tok = tok.convert_tokens_to_ids(IMAGE_TOKEN)
    enc = [[image_tok] * num_image_tokens + tok(p, add_special_tokens=True)["input_ids"] for p in prompts]
    lab = [tok(t, add_special_tokens=True)["input_ids"] for t in targets]
    max_e = max(map(len, enc))
    max_l = max(map(len, lab))
    input_ids = torch.full((batch, max_e), tok.pad_token_id)
    attention = torch.zeros((batch, max_e), dtype=torch.long)
    labels = torch.full((batch, max_l), -100)
    for i, (e, l_) in enumerate(zip(enc, lab)):
        input_ids[i, : len(e)] = torch.tensor(e)
        attention[i, : len(e)] = 1
        labels[i, : len(l_)] = torch.tensor(l_)
    return torch.stack(pixels), input_ids, attention, labels, torch.tensor(aux)


def train(model, tok, seed: int, steps: int, batch: int, log=print, lr: float = LR,
          curriculum_share: float = 0.3, warmup_share: float = 0.1) -> list[float]:
    """AdamW, linear warm-up then cosine decay; the first `curriculum_share` of the
    steps use only the short, image-dependent WARMUP_TASKS."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    # Auxiliary heads on the mean image feature (background colour, first object's
    # colour and shape, text present), dropped after training: they give the vision
    # tower a direct signal, which the caption loss alone did not (it learned the
    # task templates and left the image features nearly constant).
    d = model.config.text_config.d_model
    n_col, n_shape = len(synthetic.COLORS), len(synthetic.SHAPES)
    heads = torch.nn.ModuleList([
        torch.nn.Linear(d, n_col), torch.nn.Linear(d, n_col + 1), torch.nn.Linear(d, n_shape + 1),
        torch.nn.Linear(d, 2),
    ])
    opt = torch.optim.AdamW(list(model.parameters()) + list(heads.parameters()), lr=lr, weight_decay=0.01)
    warmup = max(1, int(steps * warmup_share))
    curriculum = int(steps * curriculum_share)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))
    )
    model.train()
    losses, aux_losses = [], []
    t0 = time.time()
    for step in range(steps):
        size = IMAGE_SIZE
        n_img = (size // 32) ** 2 + 1
        tasks = WARMUP_TASKS if step < curriculum else None
        pv, ids, att, labels, aux = make_batch(rng, tok, batch, size, n_img, tasks)
        # The image features are computed once and merged as transformers does, so the
        # auxiliary heads and the caption loss share them.
        feats = model.model.get_image_features(pixel_values=pv).pooler_output
        embeds = model.get_input_embeddings()(ids)
        embeds = embeds.masked_scatter((ids == model.config.image_token_id)[..., None], feats.to(embeds.dtype))
        out = model(inputs_embeds=embeds, attention_mask=att, labels=labels)
        pooled = feats.mean(dim=1)
        aux_loss = sum(torch.nn.functional.cross_entropy(h(pooled), aux[:, i]) for i, h in enumerate(heads))
        opt.zero_grad()
        (out.loss + AUX_WEIGHT * aux_loss).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(out.loss))
        aux_losses.append(float(aux_loss))
        if step % 50 == 0 or step == steps - 1:
            # How much the loss rises when each target gets another sample's image and
            # prompt: near zero means the decoder ignores the encoder.
            with torch.no_grad():
                perm = torch.roll(torch.arange(batch), 1)
                shuffled = model(input_ids=ids[perm], pixel_values=pv[perm], attention_mask=att[perm], labels=labels)
            log(f"step {step:5d}  loss {np.mean(losses[-50:]):.4f}  aux {np.mean(aux_losses[-50:]):.3f}  "
                f"conditioning gap {float(shuffled.loss) - float(out.loss):+.3f}  {time.time() - t0:.0f}s")
    model.eval()
    return losses


# The OCR phase: after the main training the model answers "" to every OCR
# prompt (most training scenes have no text, and reading is the hardest skill),
# so the fixtures would never exercise OCR text or quad boxes. A short second
# phase where OCR prompts always come with text teaches it to emit a word and a
# quad box; the rest of the task mix stays as it was.
OCR_PHASE_STEPS = 1000
OCR_PHASE_LR = 2e-4
# The full task mix with the OCR tasks (the longest targets: a word and a quad box) weighted up.
OCR_PHASE_TASKS = synthetic.ALL_TASKS + [synthetic.VQA_TASK] + ["<OCR_WITH_REGION>"] * 3 + ["<OCR>", "<REGION_TO_OCR>"]


def train_ocr_phase(model, tok, seed: int, steps: int, batch: int, log=print, lr: float = OCR_PHASE_LR) -> None:
    rng = random.Random(seed + 1)
    torch.manual_seed(seed + 1)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))
    )
    model.train()
    losses = []
    t0 = time.time()
    for step in range(steps):
        n_img = (IMAGE_SIZE // 32) ** 2 + 1
        pv, ids, att, labels, _ = make_batch(rng, tok, batch, IMAGE_SIZE, n_img, OCR_PHASE_TASKS, ocr_needs_text=True)
        out = model(input_ids=ids, pixel_values=pv, attention_mask=att, labels=labels)
        opt.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(out.loss))
        if step % 50 == 0 or step == steps - 1:
            log(f"ocr phase step {step:4d}  loss {np.mean(losses[-50:]):.4f}  {time.time() - t0:.0f}s")
    model.eval()


def build_and_train(seed: int, steps: int, batch: int, log=print, ocr_steps: int = OCR_PHASE_STEPS):
    """Returns (model in eval mode, BPE tokenizer without <image>, hf tokenizer with it)."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    base_tok = build_tokenizer()
    hf_tok = hf_tokenizer(base_tok)
    image_token_id = hf_tok.convert_tokens_to_ids(IMAGE_TOKEN)
    assert image_token_id == base_tok.get_vocab_size(), "the <image> placeholder must be the last id"
    config = tiny_config(vocab_size=image_token_id + 1, image_token_id=image_token_id)
    model = Florence2ForConditionalGeneration(config)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"tiny Florence-2: {n_params / 1e6:.2f} M parameters, vocab {config.text_config.vocab_size}")
    train(model, hf_tok, seed, steps, batch, log=log)
    if ocr_steps > 0:
        train_ocr_phase(model, hf_tok, seed, ocr_steps, batch, log=log)
    return model, base_tok, hf_tok


def save_checkpoint(model, base_tok: Tokenizer, hf_tok, path: str, info: dict | None = None) -> None:
    os.makedirs(path, exist_ok=True)
    model.save_pretrained(path)
    hf_tok.save_pretrained(path)
    base_tok.save(os.path.join(path, "bpe_tokenizer.json"))
    if info is not None:
        with open(os.path.join(path, "training.json"), "w") as f:
            json.dump(info, f, indent=1)


def load_checkpoint(path: str):
    """(model in eval mode, BPE tokenizer without <image>, hf tokenizer with it)."""
    model = Florence2ForConditionalGeneration.from_pretrained(path, dtype=torch.float32).eval()
    base_tok = Tokenizer.from_file(os.path.join(path, "bpe_tokenizer.json"))
    return model, base_tok, hf_tokenizer(base_tok)


def random_base(seed: int):
    """Florence-2-base dimensions (231 M parameters) with random weights, for timing.

    The tiny tokenizer is reused; the logits are as wide as the real model's (51289).
    """
    torch.manual_seed(seed)
    base_tok = build_tokenizer()
    hf_tok = hf_tokenizer(base_tok)
    vision = Florence2VisionConfig(
        depths=[1, 1, 9, 1], embed_dim=[128, 256, 512, 1024], num_heads=[4, 8, 16, 32],
        num_groups=[4, 8, 16, 32], window_size=12, drop_path_rate=0.0, projection_dim=768,
    )
    text = BartConfig(
        vocab_size=51290, d_model=768, encoder_layers=6, decoder_layers=6, encoder_attention_heads=12,
        decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072, max_position_embeddings=1024,
        dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, scale_embedding=False, bos_token_id=0,
        pad_token_id=1, eos_token_id=2, decoder_start_token_id=2, forced_bos_token_id=0, forced_eos_token_id=2,
    )
    # The image placeholder is the tiny tokenizer's `<image>`, as in the tiny model.
    image_token_id = hf_tok.convert_tokens_to_ids(IMAGE_TOKEN)
    config = Florence2Config(text_config=text.to_dict(), vision_config=vision.to_dict(), image_token_id=image_token_id,
                             bos_token_id=0, pad_token_id=1, eos_token_id=2, decoder_start_token_id=2)
    model = Florence2ForConditionalGeneration(config).eval()
    return model, base_tok, hf_tok
