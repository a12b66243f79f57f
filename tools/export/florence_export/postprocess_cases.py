"""Random well- and ill-formed generations run through the reference post-processor.

The engine's post-processor re-implements transformers' regular expressions by
hand; these cases (fixed seed) pin its behaviour on everything a model could
emit, including text no trained model would produce.
"""

from __future__ import annotations

import random

from . import references

FRAGMENTS = [
    "car", "a dog", " red square", "it", "the image", "STOP", "42", " ", "  ", "\n", "caf\u00e9", "\u00fc",
    "<s>", "</s>", "<pad>", "<od>", "</od>", "<ground>", "<obj>", "<sep>", "<poly>", "</poly>", "<box>",
    "<loc_", "<loc_>", "<loc_x>", ">", "<", "<loc_1000>", "<loc_0012>",
]
TASKS = [
    "<CAPTION>", "<OCR_WITH_REGION>", "<OD>", "<REGION_PROPOSAL>", "<CAPTION_TO_PHRASE_GROUNDING>",
    "<REFERRING_EXPRESSION_SEGMENTATION>", "<OPEN_VOCABULARY_DETECTION>",
]
SIZES = [(640, 480), (1, 1), (37, 1000), (1000, 37), (333, 777)]


def _loc(rng):
    return f"<loc_{rng.choice([0, 1, 2, 499, 500, 998, 999, rng.randrange(1000)])}>"


def random_text(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randrange(1, 14)):
        r = rng.random()
        if r < 0.45:
            parts.append("".join(_loc(rng) for _ in range(rng.choice([1, 2, 3, 4, 4, 4, 5, 7, 8, 8, 9]))))
        else:
            parts.append(rng.choice(FRAGMENTS))
    return "".join(parts)


def structured_text(rng: random.Random) -> str:
    """Plausible model outputs for each kind of task."""
    kind = rng.randrange(4)
    if kind == 0:
        return "</s><s>" + "".join(rng.choice(["car", "dog", "a red square"]) + "".join(_loc(rng) for _ in range(4))
                                   for _ in range(rng.randrange(1, 4))) + "</s>"
    if kind == 1:
        return "</s><s>" + "".join(rng.choice(["STOP", "OPEN 42"]) + "".join(_loc(rng) for _ in range(8))
                                   for _ in range(rng.randrange(1, 3))) + "</s>"
    if kind == 2:
        polys = "<sep>".join("".join(_loc(rng) for _ in range(rng.randrange(3, 12))) for _ in range(rng.randrange(1, 3)))
        return f"</s><s>{rng.choice(['', 'cat'])}{polys}</s>"
    return "</s><s>cat<poly>" + "".join(_loc(rng) for _ in range(6)) + "</poly>dog<poly>" + \
        "".join(_loc(rng) for _ in range(7)) + "</poly></s>"


def cases(processor, seed: int = 7, count: int = 700) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        text = structured_text(rng) if i % 3 == 0 else random_text(rng)
        task = TASKS[i % len(TASKS)]
        size = SIZES[rng.randrange(len(SIZES))]
        parsed = processor.post_process_generation(text, task=task, image_size=size)[task]
        out.append({"text": text, "task": task, "image_size": list(size), "result": references._jsonable(parsed)})
    return out
