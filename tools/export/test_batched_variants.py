"""batched_variants on a copy of the tiny model's graphs: its MatMulNBits pair keeps a
row's numbers its own in any batch, which the variants' dynamic int8 quantisation does
not (the reason the pair is quantised differently)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from florence_export import batched_variants, quantize, variant_check  # noqa: E402
from florence_export.batched_feed import BATCHED_DECODER, CROSS_KEY_VALUES  # noqa: E402

TINY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures", "tiny-florence2")


class BatchedVariants(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="batched-variants-")
        cls.dir = os.path.join(cls.tmp, "tiny")
        shutil.copytree(TINY, cls.dir, ignore=shutil.ignore_patterns("*_fp16.onnx", "hailo"))
        cls.onnx = os.path.join(cls.dir, "onnx")
        cls.ref = variant_check.Reference(cls.dir, variant_check.scenes(2, seed=1), threads=1)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def test_the_8_bit_pair_is_batch_invariant_and_close_to_float32(self):
        f = batched_variants.write(self.onnx, "int8", "_int8", self.ref, 0.75, threads=1, log=lambda _m: None)
        self.assertEqual(f["batched_vs_alone_max_abs"], 0.0)
        self.assertGreaterEqual(f["token_agreement"], 0.9)
        self.assertTrue(batched_variants.has_pair(self.onnx, "_int8"))
        self.assertFalse(any(n.endswith(".partial.onnx") for n in os.listdir(self.onnx)))

    def test_dynamic_int8_would_make_rows_depend_on_their_batch(self):
        for stem in (CROSS_KEY_VALUES, BATCHED_DECODER):
            quantize.dynamic(batched_variants.path(self.onnx, stem, ""),
                             batched_variants.path(self.onnx, stem, "_dyn"), "int8")
        f = batched_variants.check(self.onnx, "_dyn", self.ref, threads=1)
        self.assertGreater(f["batched_vs_alone_max_abs"], 0.0)


if __name__ == "__main__":
    unittest.main()
