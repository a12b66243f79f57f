"""What the benchmark and the quality table time and score: a precision variant
(graph file suffix) at an input size, and whether a model directory has it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from ort_loop import graph_files

# Every precision variant the exporter writes (tools/export/florence_export/variants.py),
# by file suffix, fp32 for none: what the benchmark and the quality table take by default.
DEFAULT_VARIANTS = "fp32,_fp16,_quantized,_int8,_uint8,_qdq,_int8mm,_q4,_q4f16,_bnb4"
# The 8-bit ones, which issue 21's integer-vision target compares with fp32.
EIGHT_BIT = ("_quantized", "_int8", "_uint8", "_qdq", "_int8mm")


@dataclass(frozen=True)
class Config:
    """A precision variant (graph file suffix, "" for float32) at an input size."""
    variant: str
    size: int

    @property
    def label(self) -> str:
        return f"{self.variant or 'fp32'} {self.size}"


def native_size(model_dir: str) -> int:
    return json.load(open(os.path.join(model_dir, "preprocessor_config.json")))["size"]["height"]


def present(model_dir: str, variant: str) -> bool:
    return all(os.path.isfile(p) for p in graph_files(model_dir, variant))
