"""Pillow BICUBIC resizes of a synthetic pattern at many size pairs.

The engine re-implements Pillow's 8-bit resampling (including the order of
its two passes, which Pillow 13 picks from the sizes); these cases pin it
beyond the fixture images. The pattern is a formula the Rust test computes too.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np
from PIL import Image


def pattern(w: int, h: int) -> np.ndarray:
    """RGB pattern with sharp edges and gradients: must match the Rust test's formula."""
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    r = (x * 37 + y * 11) % 256
    g = np.where(((x // 3) + (y // 5)) % 2 == 0, 250, 5)
    b = (x * y * 7 + x * 3) % 256
    return np.stack([r, g, b], -1).astype(np.uint8)


def cases(seed: int = 5, count: int = 120) -> list[dict]:
    rng = random.Random(seed)
    sizes = [(37, 1000, 384, 384), (1000, 37, 384, 384), (1, 1, 384, 384), (640, 480, 768, 768),
             (200, 300, 384, 384), (768, 768, 384, 384), (5, 400, 384, 384)]
    while len(sizes) < count:
        sizes.append(tuple(rng.randrange(1, 200) for _ in range(4)))
    out = []
    for iw, ih, ow, oh in sizes:
        img = Image.fromarray(pattern(iw, ih), "RGB").resize((ow, oh), Image.BICUBIC)
        data = np.asarray(img).tobytes()
        out.append({"in": [iw, ih], "out": [ow, oh], "sha256": hashlib.sha256(data).hexdigest(),
                    "sum": int(np.asarray(img, dtype=np.int64).sum())})
    return out
