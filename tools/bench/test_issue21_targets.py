"""Unit tests of issue #21's target lines (issue21_targets.py): each says its
figure and "(met)", "(not met)" or why the run cannot say. florenced/tests/bench.rs
runs them with the benchmark's venv:

    python -m unittest discover -s tools/bench -p 'test_issue21_targets.py'
"""

from __future__ import annotations

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from issue21_targets import (  # noqa: E402
    QualityLoss,
    against_loop,
    against_transformers,
    cold_start,
    integer_vision,
)


class IntegerVision(unittest.TestCase):
    def test_speed_and_quality_each_have_their_verdict(self):
        line = integer_vision(2000.0, ("_qdq", 900.0), QualityLoss("_qdq 384", "fp32 384", "`<VQA>` acc", 2.1))
        self.assertIn("vision _qdq 768 900 ms against fp32 768 2000 ms: 0.45x (met)", line)
        self.assertTrue(line.endswith("quality _qdq 384 against fp32 384 (the quality model's own size): "
                                      "largest loss 2.1 points, `<VQA>` acc (not met)"), line)

    def test_slower_vision_and_no_loss(self):
        line = integer_vision(2000.0, ("_qdq", 1600.0), QualityLoss("_qdq 384", "fp32 384", "`<OCR>` CER", -0.5))
        self.assertIn(": 0.80x (not met);", line)
        self.assertTrue(line.endswith("no column behind fp32 (met)"), line)

    def test_what_the_run_lacks_is_said(self):
        self.assertTrue(integer_vision(2000.0, ("_int8", 1000.0), "no quality run (--no-quality)")
                        .endswith("0.50x (met); quality (not measured in this run: no quality run (--no-quality))"))
        self.assertTrue(integer_vision(None, None, "x").endswith("(not measured in this run: no 8-bit variant at 768)"))
        self.assertTrue(integer_vision(None, ("_int8", 1.0), "x").endswith("(not measured in this run: no fp32 at 768)"))


class Threads(unittest.TestCase):
    def test_the_loop_target_at_the_threads_it_asks_for(self):
        line = against_loop("fp32 768", 2, 1.2)
        self.assertIn("fp32 768 `<CAPTION>` greedy at 2 threads: 1.20x (met); 4 threads (not measured in this run: "
                      "run again with --threads 4)", line)
        self.assertIn("at 4 threads: 1.10x (not met); 2 threads", against_loop("fp32 768", 4, 1.1))

    def test_the_loop_target_at_other_threads_shows_the_figure_but_no_verdict(self):
        line = against_loop("fp32 384", 1, 0.92)
        self.assertTrue(line.endswith("at 1 threads: 0.92x (not measured in this run: the target asks 2 and 4 "
                                      "threads, this run has 1)"), line)

    def test_transformers_below_8_threads_is_not_measurable(self):
        self.assertTrue(against_transformers("fp32 768", 2, 1.25).endswith(
            "at 2 threads: 1.25x (not measurable on 2 threads: the target asks 8 and 16)"))
        self.assertTrue(against_transformers("fp32 384", 1, None).endswith(
            ": (not measurable on 1 threads: the target asks 8 and 16)"))

    def test_transformers_at_8_and_16_threads(self):
        self.assertIn("at 16 threads: 0.88x (not met); 8 threads (not measured", against_transformers("x", 16, 0.88))
        self.assertIn("at 8 threads: 1.06x (met)", against_transformers("x", 8, 1.06))
        self.assertTrue(against_transformers("x", 8, None).endswith("(not measured in this run: no transformers peer "
                                                                    "(it needs --checkpoint; --quick has none))"))
        self.assertIn("(not measured in this run: the target asks 8 and 16 threads, this run has 12)",
                      against_transformers("x", 12, 1.1))


class ColdStart(unittest.TestCase):
    def test_ratio_to_the_warm_median(self):
        self.assertTrue(cold_start("fp32 768", 3800.0, 2600.0).endswith(
            "fp32 768 `<CAPTION>` greedy 3800 ms against the engine's warm median 2600 ms: 1.46x (met)"))
        self.assertTrue(cold_start("fp32 768", 5400.0, 2600.0).endswith("2.08x (not met)"))
        self.assertIn("(not measured in this run:", cold_start("fp32 768", None, None))


if __name__ == "__main__":
    unittest.main()
