"""What the benchmark and the quality table time and score: a precision variant
(graph file suffix) at an input size, and whether a model directory has it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from ort_loop import graph_files


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
