"""A small synthetic world for training the tiny Florence-2.

Scenes are a background (flat or a two-colour gradient) with one to three
objects (square, circle, triangle, bar) in named colours, and optionally a
line of text. Every Florence-2 task gets a target derived from the scene, in
the output formats of the real model: captions, `label<loc_..>x4` boxes,
`<loc_..>` polygons, OCR with quad boxes, region questions.
"""

from __future__ import annotations

import dataclasses
import random
import re

from PIL import Image, ImageDraw, ImageFont

COLORS = {
    "red": (220, 30, 30),
    "green": (30, 170, 60),
    "blue": (40, 60, 220),
    "yellow": (240, 220, 40),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
    "orange": (245, 140, 20),
    "purple": (140, 50, 170),
}
SHAPES = ["square", "circle", "triangle", "bar"]
WORDS = ["STOP", "OPEN", "EXIT", "SALE", "CAFE", "PARK", "HOTEL", "BUS", "TAXI", "BANK", "42", "7", "2024"]

TASKS_NO_INPUT = [
    "<OCR>",
    "<OCR_WITH_REGION>",
    "<CAPTION>",
    "<DETAILED_CAPTION>",
    "<MORE_DETAILED_CAPTION>",
    "<OD>",
    "<DENSE_REGION_CAPTION>",
    "<REGION_PROPOSAL>",
]
TASKS_WITH_INPUT = [
    "<CAPTION_TO_PHRASE_GROUNDING>",
    "<REFERRING_EXPRESSION_SEGMENTATION>",
    "<REGION_TO_SEGMENTATION>",
    "<OPEN_VOCABULARY_DETECTION>",
    "<REGION_TO_CATEGORY>",
    "<REGION_TO_DESCRIPTION>",
    "<REGION_TO_OCR>",
]
ALL_TASKS = TASKS_NO_INPUT + TASKS_WITH_INPUT
VQA_TASK = "<VQA>"


@dataclasses.dataclass
class Obj:
    shape: str
    color: str
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels

    @property
    def name(self) -> str:
        return f"{self.color} {self.shape}"

    def polygon(self) -> list[tuple[float, float]]:
        x1, y1, x2, y2 = self.box
        if self.shape == "triangle":
            return [((x1 + x2) / 2, y1), (x2, y2), (x1, y2)]
        if self.shape == "circle":
            cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2, (y2 - y1) / 2
            pts = [(1, 0), (0.7, 0.7), (0, 1), (-0.7, 0.7), (-1, 0), (-0.7, -0.7), (0, -1), (0.7, -0.7)]
            return [(cx + rx * a, cy + ry * b) for a, b in pts]
        return [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]


@dataclasses.dataclass
class TextLine:
    text: str
    box: tuple[float, float, float, float]
    color: str
    font_size: int


@dataclasses.dataclass
class Scene:
    width: int
    height: int
    background: str
    gradient_to: str | None
    objects: list[Obj]
    text: TextLine | None


def where(box, width, height) -> str:
    cx = (box[0] + box[2]) / 2 / width
    cy = (box[1] + box[3]) / 2 / height
    col = "left" if cx < 0.36 else "right" if cx > 0.64 else "center"
    row = "top" if cy < 0.36 else "bottom" if cy > 0.64 else "middle"
    if row == "middle" and col == "center":
        return "center"
    if row == "middle":
        return col
    if col == "center":
        return row
    return f"{row} {col}"


def size_word(box, width, height) -> str:
    area = (box[2] - box[0]) * (box[3] - box[1]) / (width * height)
    return "large" if area > 0.12 else "small" if area < 0.04 else "medium"


def random_scene(rng: random.Random, width: int, height: int) -> Scene:
    names = list(COLORS)
    background = rng.choice(names)
    gradient_to = rng.choice(names) if rng.random() < 0.25 else None
    objects: list[Obj] = []
    for _ in range(rng.choice([1, 1, 2, 2, 3])):
        for _attempt in range(20):
            w = rng.uniform(0.15, 0.45) * width
            h = rng.uniform(0.15, 0.45) * height
            shape = rng.choice(SHAPES)
            if shape == "bar":
                h = h * 0.35
            x1 = rng.uniform(0.02 * width, width - w - 0.02 * width)
            y1 = rng.uniform(0.02 * height, height - h - 0.02 * height)
            box = (x1, y1, x1 + w, y1 + h)
            if all(_overlap(box, o.box) < 0.05 for o in objects):
                color = rng.choice([c for c in names if c not in (background, gradient_to)])
                objects.append(Obj(shape, color, box))
                break
    text = None
    if rng.random() < 0.4:
        words = " ".join(rng.sample(WORDS, rng.choice([1, 1, 2])))
        size = max(8, int(min(width, height) * rng.uniform(0.08, 0.13)))
        font = ImageFont.load_default(size=size)
        left, top, right, bottom = font.getbbox(words)
        tw, th = right - left, bottom - top
        if tw < width * 0.95 and th < height * 0.5:
            x = rng.uniform(0.02 * width, width - tw - 0.02 * width)
            y = rng.uniform(0.02 * height, height - th - 0.02 * height)
            box = (x, y, x + tw, y + th)
            if all(_overlap(box, o.box) < 0.05 for o in objects):
                color = rng.choice([c for c in names if c not in (background, gradient_to)])
                text = TextLine(words, box, color, size)
    return Scene(width, height, background, gradient_to, objects, text)


def _overlap(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return inter / smaller if smaller > 0 else 1.0


def render(scene: Scene) -> Image.Image:
    img = Image.new("RGB", (scene.width, scene.height), COLORS[scene.background])
    if scene.gradient_to:
        a, b = COLORS[scene.background], COLORS[scene.gradient_to]
        draw = ImageDraw.Draw(img)
        for x in range(scene.width):
            t = x / max(1, scene.width - 1)
            draw.line([(x, 0), (x, scene.height)], fill=tuple(int(a[i] * (1 - t) + b[i] * t) for i in range(3)))
    draw = ImageDraw.Draw(img)
    for o in scene.objects:
        fill = COLORS[o.color]
        if o.shape == "circle":
            draw.ellipse(o.box, fill=fill)
        else:
            draw.polygon(o.polygon(), fill=fill)
    if scene.text:
        font = ImageFont.load_default(size=scene.text.font_size)
        left, top, _, _ = font.getbbox(scene.text.text)
        draw.text(
            (scene.text.box[0] - left, scene.text.box[1] - top),
            scene.text.text,
            fill=COLORS[scene.text.color],
            font=font,
        )
    return img


# ---- targets ---------------------------------------------------------------


def q(v: float, size: float) -> int:
    """Quantise a pixel coordinate into one of 1000 bins, as Florence-2 does."""
    return max(0, min(999, int(v / (size / 1000.0))))


def loc_box(box, w, h) -> str:
    return "".join(f"<loc_{q(v, s)}>" for v, s in zip(box, (w, h, w, h)))


def loc_poly(points, w, h) -> str:
    return "".join(f"<loc_{q(x, w)}><loc_{q(y, h)}>" for x, y in points)


def background_phrase(s: Scene) -> str:
    if s.gradient_to:
        return f"a {s.background} to {s.gradient_to} gradient background"
    return f"a {s.background} background"


def caption(s: Scene) -> str:
    if not s.objects:
        return f"A plain {s.background} image." if not s.gradient_to else f"A {s.background} and {s.gradient_to} gradient."
    names = [f"a {o.name}" for o in s.objects]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"{listed[0].upper()}{listed[1:]} on {background_phrase(s)}."


def detailed_caption(s: Scene) -> str:
    parts = [f"The image shows {background_phrase(s)}."]
    for o in s.objects:
        parts.append(f"There is a {o.name} in the {where(o.box, s.width, s.height)}.")
    if s.text:
        parts.append(f"The text {s.text.text} is written in {s.text.color}.")
    return " ".join(parts)


def more_detailed_caption(s: Scene) -> str:
    parts = [f"The image shows {background_phrase(s)} with {len(s.objects)} object{'s' if len(s.objects) != 1 else ''}."]
    for o in s.objects:
        parts.append(
            f"A {size_word(o.box, s.width, s.height)} {o.name} is in the {where(o.box, s.width, s.height)} of the image."
        )
    if s.text:
        parts.append(f"In the {where(s.text.box, s.width, s.height)} the word {s.text.text} is written in {s.text.color} letters.")
    return " ".join(parts)


def quad(box) -> list[tuple[float, float]]:
    x1, y1, x2, y2 = box
    return [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]


def pick_object(rng: random.Random, s: Scene) -> Obj | None:
    return rng.choice(s.objects) if s.objects else None


def task_sample(rng: random.Random, s: Scene, task: str) -> tuple[str, str] | None:
    """(prompt with task token and input, target text) or None if the scene cannot pose it."""
    sample = _task_sample(rng, s, task)
    if sample is None:
        return None
    return tuple(articles(part) for part in sample)


def articles(text: str) -> str:
    """"a orange" made "an orange", in every prompt and target."""
    return re.sub(r"\b([Aa]) (orange)", r"\1n \2", text)


def _task_sample(rng: random.Random, s: Scene, task: str) -> tuple[str, str] | None:
    w, h = s.width, s.height
    if task == "<CAPTION>":
        return task, caption(s)
    if task == "<DETAILED_CAPTION>":
        return task, detailed_caption(s)
    if task == "<MORE_DETAILED_CAPTION>":
        return task, more_detailed_caption(s)
    if task == "<OD>":
        return task, "".join(f"{o.shape}{loc_box(o.box, w, h)}" for o in s.objects)
    if task == "<DENSE_REGION_CAPTION>":
        return task, "".join(f"{o.name}{loc_box(o.box, w, h)}" for o in s.objects)
    if task == "<REGION_PROPOSAL>":
        boxes = [o.box for o in s.objects] + ([s.text.box] if s.text else [])
        return task, "".join(loc_box(b, w, h) for b in boxes)
    if task == "<OCR>":
        return task, s.text.text if s.text else ""
    if task == "<OCR_WITH_REGION>":
        if not s.text:
            return task, ""
        return task, f"{s.text.text}{loc_poly(quad(s.text.box), w, h)}"
    if task == "<CAPTION_TO_PHRASE_GROUNDING>":
        o = pick_object(rng, s)
        if o is None:
            return None
        phrase = f"a {o.name}"
        return f"{task}{phrase} on the background", f"{phrase}{loc_box(o.box, w, h)}"
    if task == "<REFERRING_EXPRESSION_SEGMENTATION>":
        o = pick_object(rng, s)
        if o is None:
            return None
        return f"{task}the {o.name}", loc_poly(o.polygon(), w, h)
    if task == "<REGION_TO_SEGMENTATION>":
        o = pick_object(rng, s)
        if o is None:
            return None
        return f"{task}{loc_box(o.box, w, h)}", loc_poly(o.polygon(), w, h)
    if task == "<OPEN_VOCABULARY_DETECTION>":
        o = pick_object(rng, s)
        if o is None:
            return None
        hits = [x for x in s.objects if x.shape == o.shape]
        return f"{task}{o.shape}", "".join(f"{o.shape}{loc_box(x.box, w, h)}" for x in hits)
    if task == "<REGION_TO_CATEGORY>":
        o = pick_object(rng, s)
        if o is None:
            return None
        return f"{task}{loc_box(o.box, w, h)}", f"{o.shape}{loc_box(o.box, w, h)}"
    if task == "<REGION_TO_DESCRIPTION>":
        o = pick_object(rng, s)
        if o is None:
            return None
        return f"{task}{loc_box(o.box, w, h)}", f"a {o.name}"
    if task == "<REGION_TO_OCR>":
        if not s.text:
            return None
        return f"{task}{loc_box(s.text.box, w, h)}", s.text.text
    if task == VQA_TASK:
        kind = rng.choice(["background", "object", "count", "text"])
        if kind == "background":
            return f"{task}What color is the background?", s.background
        if kind == "count":
            return f"{task}How many objects are there?", str(len(s.objects))
        if kind == "text":
            return f"{task}What does the text say?", s.text.text if s.text else "There is no text."
        o = pick_object(rng, s)
        if o is None:
            return None
        return f"{task}What color is the {o.shape}?", o.color
    raise ValueError(task)


def corpus() -> list[str]:
    """Text the tokenizer is trained on: every word the targets and prompts use."""
    rng = random.Random(1234)
    lines = []
    for _ in range(3000):
        s = random_scene(rng, 640, 480)
        for task in ALL_TASKS + [VQA_TASK]:
            sample = task_sample(rng, s, task)
            if sample:
                lines.extend(sample)
    return lines
