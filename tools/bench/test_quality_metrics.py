"""Unit tests of the quality table's scoring (quality_metrics.py, quality_tasks.py);
florenced/tests/quality.rs runs them with the benchmark's venv:

    python -m unittest discover -s tools/bench -p 'test_quality_*.py'
"""

from __future__ import annotations

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from quality_metrics import boxes_of, edit_distance, iou, mask, mask_iou, matched  # noqa: E402
from quality_scenes import Probe, synthetic  # noqa: E402
from quality_tasks import Tally, add, worst_loss  # noqa: E402


def scene() -> synthetic.Scene:
    red = synthetic.Obj("square", "red", (10, 10, 110, 110))
    blue = synthetic.Obj("circle", "blue", (200, 100, 300, 200))
    return synthetic.Scene(400, 300, "white", None, [red, blue], synthetic.TextLine("STOP", (50, 220, 150, 260), "black", 30))


def probe(task: str, target: str, text: str | None = None, subject=None) -> Probe:
    return Probe(0, "scene.png", task, text, target, scene(), subject)


class Metrics(unittest.TestCase):
    def test_iou(self):
        self.assertEqual(iou((0, 0, 10, 10), (0, 0, 10, 10)), 1.0)
        self.assertAlmostEqual(iou((0, 0, 10, 10), (5, 0, 15, 10)), 50 / 150)
        self.assertEqual(iou((0, 0, 10, 10), (20, 20, 30, 30)), 0.0)

    def test_matching_takes_each_true_box_once_and_checks_labels(self):
        truth = [((0, 0, 10, 10), "square")]
        self.assertEqual(matched([((0, 0, 10, 10), "square"), ((0, 0, 10, 9), "square")], truth, True), 1)
        self.assertEqual(matched([((0, 0, 10, 10), "circle")], truth, True), 0)
        self.assertEqual(matched([((0, 0, 10, 10), "circle")], truth, False), 1)
        # IoU 1/3 is a miss.
        self.assertEqual(matched([((5, 0, 15, 10), "square")], truth, True), 0)

    def test_edit_distance(self):
        self.assertEqual(edit_distance("kitten", "sitting"), 3)
        self.assertEqual(edit_distance("", "abc"), 3)
        self.assertEqual(edit_distance("abc", "abc"), 0)

    def test_quads_are_scored_as_their_bounding_boxes(self):
        got = boxes_of({"quad_boxes": [[1, 2, 9, 2, 9, 8, 1, 8]], "labels": ["STOP"]})
        self.assertEqual(got, [((1, 2, 9, 8), "STOP")])

    def test_mask_iou(self):
        a = mask([[0, 0, 100, 0, 100, 100, 0, 100]], None, 200, 100)
        b = mask([[0, 0, 200, 0, 200, 100, 0, 100]], None, 200, 100)
        self.assertAlmostEqual(mask_iou(a, b), 0.5, delta=0.02)
        self.assertEqual(mask_iou(a, mask([], None, 200, 100)), 0.0)


class Tasks(unittest.TestCase):
    def test_detection_precision_and_recall(self):
        t = Tally()
        add(t, probe("<OD>", ""), {"bboxes": [[12, 10, 110, 108], [0, 0, 5, 5]], "labels": ["square", "circle"]})
        self.assertEqual(t.columns("<OD>"), {"P": 50.0, "R": 50.0})

    def test_caption_exact_and_cer(self):
        t = Tally()
        add(t, probe("<CAPTION>", "A red square."), "A red square.")
        add(t, probe("<CAPTION>", "A red square."), "A red squares.")
        self.assertEqual(t.columns("<CAPTION>"), {"exact": 50.0, "CER": 100.0 * 1 / 26})

    def test_region_to_category_reads_the_label_before_the_box(self):
        s = scene()
        t = Tally()
        add(t, probe("<REGION_TO_CATEGORY>", "", subject=s.objects[0]), "square<loc_25><loc_33><loc_275><loc_366>")
        add(t, probe("<REGION_TO_CATEGORY>", "", subject=s.objects[0]), "circle<loc_25><loc_33><loc_275><loc_366>")
        self.assertEqual(t.columns("<REGION_TO_CATEGORY>"), {"acc": 50.0})

    def test_segmentation_is_right_at_mask_iou_one_half(self):
        s = scene()
        circle = s.objects[1]
        right = {"polygons": [[[250, 100, 300, 150, 250, 200, 200, 150]]], "labels": [""]}  # its inscribed diamond
        wrong = {"polygons": [[[0, 0, 50, 0, 50, 50]]], "labels": [""]}
        t = Tally()
        add(t, probe("<REGION_TO_SEGMENTATION>", "", subject=circle), right)
        add(t, probe("<REGION_TO_SEGMENTATION>", "", subject=circle), wrong)
        self.assertEqual(t.columns("<REGION_TO_SEGMENTATION>"), {"acc": 50.0})

    def test_worst_loss_counts_a_higher_cer_and_a_lower_accuracy_as_losses(self):
        ref = {"<CAPTION>": Tally(answers=4, hits=2, edits=10, target_chars=100),
               "<VQA>": Tally(answers=4, hits=2)}
        # CER 10 -> 13 (3 points lost), exact 50 -> 50, VQA 50 -> 25 (25 points lost).
        got = {"<CAPTION>": Tally(answers=4, hits=2, edits=13, target_chars=100), "<VQA>": Tally(answers=4, hits=1)}
        self.assertEqual(worst_loss(ref, got), ("`<VQA>` acc", 25.0))
        # A lower CER is a gain, not a loss: the worst column is then the unchanged one.
        better = {"<CAPTION>": Tally(answers=4, hits=2, edits=5, target_chars=100)}
        self.assertEqual(worst_loss(ref, better), ("`<CAPTION>` exact", 0.0))
        # Columns with nothing to count on either side are not compared.
        self.assertIsNone(worst_loss(ref, {"<OD>": Tally()}))
        self.assertIsNone(worst_loss({"<OD>": Tally()}, {"<OD>": Tally(predicted=2, truth=2, hits=1)}))

    def test_held_out_scenes_pose_every_task_with_its_subject(self):
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            from quality_scenes import probes

            got = probes(6, d)
            self.assertEqual(len(os.listdir(d)), 6)
        tasks = {p.task for p in got}
        self.assertIn("<OD>", tasks)
        for p in got:
            if p.task in ("<CAPTION_TO_PHRASE_GROUNDING>", "<REGION_TO_CATEGORY>", "<REGION_TO_SEGMENTATION>",
                          "<REFERRING_EXPRESSION_SEGMENTATION>", "<REGION_TO_DESCRIPTION>"):
                self.assertIsNotNone(p.subject, p)


if __name__ == "__main__":
    unittest.main()
