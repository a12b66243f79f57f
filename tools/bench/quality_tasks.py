"""What each task's answer is scored by, from its probe's scene (quality_scenes.py):
the columns of the quality table and how one answer adds to them."""

from __future__ import annotations

from dataclasses import dataclass

from quality_metrics import boxes_of, edit_distance, mask, mask_iou, matched, norm, polygons_of, text_of
from quality_scenes import Probe

# Box tasks: (task, whether labels must match, the truth's label of an object).
BOX_TASKS = {
    "<OD>": True,
    "<DENSE_REGION_CAPTION>": True,
    "<REGION_PROPOSAL>": False,
    "<CAPTION_TO_PHRASE_GROUNDING>": True,
    "<OPEN_VOCABULARY_DETECTION>": True,
    "<OCR_WITH_REGION>": True,
}
TEXT_TASKS = ["<CAPTION>", "<DETAILED_CAPTION>", "<MORE_DETAILED_CAPTION>", "<OCR>"]
ACCURACY_TASKS = ["<REGION_TO_CATEGORY>", "<REGION_TO_DESCRIPTION>", "<REGION_TO_OCR>", "<VQA>",
                  "<REFERRING_EXPRESSION_SEGMENTATION>", "<REGION_TO_SEGMENTATION>"]


@dataclass
class Tally:
    """One task's sums over the answers of one configuration."""
    answers: int = 0
    hits: int = 0  # box tasks: true positives; others: right answers (exact, or IoU >= 0.5 for masks)
    predicted: int = 0
    truth: int = 0
    edits: int = 0
    target_chars: int = 0

    def columns(self, task: str) -> dict[str, float | None]:
        """Percentages by column name; None where nothing was there to count."""
        def pct(n, d):
            return 100.0 * n / d if d else None
        if task in BOX_TASKS:
            return {"P": pct(self.hits, self.predicted), "R": pct(self.hits, self.truth)}
        if task in TEXT_TASKS:
            return {"exact": pct(self.hits, self.answers), "CER": pct(self.edits, self.target_chars)}
        return {"acc": pct(self.hits, self.answers)}


# Columns in which a higher figure is worse (in the others higher is better).
LOWER_IS_BETTER = ("CER",)


def worst_loss(reference: dict[str, Tally], tallies: dict[str, Tally]) -> tuple[str, float] | None:
    """The column (as "`task` column") in which `tallies` fall furthest behind
    `reference`, and by how many points (negative: ahead in every column); None
    when no column has a figure on both sides."""
    worst = None
    for task, tally in tallies.items():
        if task not in reference:
            continue
        base = reference[task].columns(task)
        for col, value in tally.columns(task).items():
            if value is None or base[col] is None:
                continue
            loss = value - base[col] if col in LOWER_IS_BETTER else base[col] - value
            if worst is None or loss > worst[1]:
                worst = (f"`{task}` {col}", loss)
    return worst


def truth_boxes(p: Probe) -> list[tuple]:
    s = p.scene
    if p.task == "<OD>":
        return [(o.box, o.shape) for o in s.objects]
    if p.task == "<DENSE_REGION_CAPTION>":
        return [(o.box, o.name) for o in s.objects]
    if p.task == "<REGION_PROPOSAL>":
        return [(o.box, "") for o in s.objects] + ([(s.text.box, "")] if s.text else [])
    if p.task == "<CAPTION_TO_PHRASE_GROUNDING>":
        return [(p.subject.box, p.target.split("<loc_")[0])]
    if p.task == "<OPEN_VOCABULARY_DETECTION>":
        return [(o.box, o.shape) for o in s.objects if o.shape == p.text]
    if p.task == "<OCR_WITH_REGION>":
        return [(s.text.box, s.text.text)] if s.text else []
    raise ValueError(p.task)


def right_answer(p: Probe, result) -> bool:
    """Region tasks, VQA and segmentation: is this answer right?"""
    if p.task == "<REGION_TO_CATEGORY>":
        # The post-processor keeps the box (`square<loc_..>x4`): the category is what precedes it.
        return norm(text_of(result).split("<loc_")[0]) == norm(p.subject.shape)
    if p.task in ("<REGION_TO_DESCRIPTION>", "<REGION_TO_OCR>", "<VQA>"):
        return norm(text_of(result)) == norm(p.target)
    if p.task in ("<REFERRING_EXPRESSION_SEGMENTATION>", "<REGION_TO_SEGMENTATION>"):
        o, s = p.subject, p.scene
        truth = mask([], o.box, s.width, s.height) if o.shape == "circle" else \
            mask([[v for xy in o.polygon() for v in xy]], None, s.width, s.height)
        return mask_iou(mask(polygons_of(result), None, s.width, s.height), truth) >= 0.5
    raise ValueError(p.task)


def add(tally: Tally, p: Probe, result) -> None:
    tally.answers += 1
    if p.task in BOX_TASKS:
        pred, truth = boxes_of(result), truth_boxes(p)
        tally.hits += matched(pred, truth, BOX_TASKS[p.task])
        tally.predicted += len(pred)
        tally.truth += len(truth)
    elif p.task in TEXT_TASKS:
        got = text_of(result)
        tally.hits += got == p.target
        tally.edits += edit_distance(got, p.target)
        tally.target_chars += len(p.target)
    else:
        tally.hits += right_answer(p, result)
