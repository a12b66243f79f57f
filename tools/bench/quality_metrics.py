"""Scores of the quality table: boxes matched at IoU 0.5 (labels too where a
task has them), exact match and character error rate for text, and mask IoU
for polygons. Pure functions on post-processed results (the shapes of
transformers' `post_process_generation`, as `florenced bench` returns them);
tested by test_quality_metrics.py.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

IOU = 0.5


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def norm(label: str) -> str:
    return " ".join(label.lower().split())


def matched(pred: list[tuple], truth: list[tuple], labels: bool) -> int:
    """True positives: each true (box, label) taken at most once by the prediction of
    highest IoU >= 0.5 (with an equal label when `labels`), predictions in order."""
    free = list(range(len(truth)))
    hits = 0
    for box, label in pred:
        best, best_iou = None, IOU
        for i in free:
            t_box, t_label = truth[i]
            if labels and norm(label) != norm(t_label):
                continue
            v = iou(box, t_box)
            if v >= best_iou:
                best, best_iou = i, v
        if best is not None:
            free.remove(best)
            hits += 1
    return hits


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance in characters."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def boxes_of(result) -> list[tuple]:
    """(box, label) pairs of a boxes or quads result; quads as their bounding boxes."""
    if not isinstance(result, dict):
        return []
    if "quad_boxes" in result:
        boxes = [(min(q[0::2]), min(q[1::2]), max(q[0::2]), max(q[1::2])) for q in result["quad_boxes"]]
        return list(zip(boxes, result["labels"]))
    if "bboxes_labels" in result:
        return list(zip(result["bboxes"], result["bboxes_labels"]))
    return list(zip(result.get("bboxes", []), result.get("labels", [])))


def text_of(result) -> str:
    return result.strip() if isinstance(result, str) else ""


def mask(polygons: list[list[float]], ellipse: tuple | None, width: int, height: int) -> Image.Image:
    """A binary mask of flat [x, y, x, y, ...] polygons, or of one ellipse's box."""
    img = Image.new("1", (width, height), 0)
    draw = ImageDraw.Draw(img)
    if ellipse is not None:
        draw.ellipse(ellipse, fill=1)
    for p in polygons:
        if len(p) >= 6:
            draw.polygon([(p[i], p[i + 1]) for i in range(0, len(p) - 1, 2)], fill=1)
    return img


def mask_iou(a: Image.Image, b: Image.Image) -> float:
    pa, pb = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    union = np.count_nonzero(pa | pb)
    return np.count_nonzero(pa & pb) / union if union else 0.0


def polygons_of(result) -> list[list[float]]:
    """Every polygon of a segmentation result, flat."""
    if not isinstance(result, dict):
        return []
    return [p for label_polys in result.get("polygons", []) for p in label_polys]
