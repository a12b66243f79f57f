"""The batchable decoder of a precision variant: `onnx/decoder_model_batched<suffix>.onnx`
and `onnx/decoder_cross_key_values<suffix>.onnx`, made from the float32 pair (batched.py)
with ONNX Runtime's tools alone (no PyTorch), so that requests decoding on a variant share
decoder runs as they do on float32.

Not the variant's own quantisation: the 8-bit variants' decoders are quantised dynamically
(quantize.dynamic), which quantises each run's activations with one scale for the whole
tensor, so a row's numbers would depend on the other rows of its batch (measured on the
tiny model's batched graph: a row's logits moved by up to 0.04 when its neighbours' inputs
were scaled). Here every MatMul gets `MatMulNBits`: symmetric weights in blocks (8 bits in
blocks of 64 for the 8-bit variants, 4 bits in blocks of 32 for `_q4`) and accuracy level
4, which quantises the activations per row and block, so a row's numbers are its own:
checked bit for bit below, rows alone against the same rows in batches with other rows and
paddings. On the
base-shaped model (2 threads, interleaved) the 8-bit step ran as fast as the dynamic int8
merged decoder's for one row and advanced 4 rows in 1.4 times its time.

The 8-bit variants' cross-key/value graph is the exception: it runs once per request, on
that request alone ([1, encoder length, d_model]), so batch invariance does not concern it,
and on its hundreds of rows MatMulNBits ran at float32's pace (52.5 against 54.3 ms on the
base-shaped model at 768, 2 threads) while ONNX Runtime's dynamic int8 product
(quantize.dynamic_matmul: per-tensor int8 weights, DynamicQuantizeMatMul) took 18.3 ms. It
gets the latter; its keys and values are then those of the merged 8-bit decoder's way of
quantising (cosine to float32's 0.99987, MatMulNBits' 0.99996), checked with the step
graph below.

The pair is kept only if its rows are batch-invariant and its decoder, teacher-forced along
float32's greedy tokens on float32's encoder states, picks float32's token as often as the
variant's bound asks of the whole pipeline (variants.BOUNDS).
"""

from __future__ import annotations

import logging
import os

import numpy as np
import onnx

from . import quantize
from .batched_feed import BATCHED_DECODER, CROSS_KEY_VALUES, Row, step_feed
from .numerics import cosine, session

# Variants that get a batchable pair, and the bits of its weights.
BITS = {"quantized": 8, "int8": 8, "uint8": 8, "qdq": 8, "int8mm": 8, "q4": 4}
PAIR = (CROSS_KEY_VALUES, BATCHED_DECODER)
# Weights per quantisation block, by bits. 4 bits: blocks of 32, as `_q4`'s. 8 bits: blocks
# of 64, whose step ran as fast as the dynamic int8 merged decoder's for one row (7.86
# against 7.85 ms on the base-shaped model, 2 threads; blocks of 32: 8.39 ms) and 4 rows in
# 11.58 ms (blocks of 32: 12.32 ms). Blocks of 128 were faster still but not
# batch-invariant (ONNX Runtime 1.32: a row's logits moved by 0.03 in a batch).
BLOCK = {8: 64, 4: 32}
# Extra window and encoder padding of the batches checked against rows alone.
PADDINGS = ((0, 0), (7, 3), (1, 40), (30, 200))


def path(onnx_dir: str, stem: str, suffix: str) -> str:
    return os.path.join(onnx_dir, f"{stem}{suffix}.onnx")


def has_pair(onnx_dir: str, suffix: str) -> bool:
    return all(os.path.isfile(path(onnx_dir, stem, suffix)) for stem in PAIR)


def matmul_nbits(src: str, dst: str, bits: int) -> None:
    """Every MatMul with a constant weight as MatMulNBits, accuracy level 4 (see above)."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    # It reports every node it skips or quantises at INFO.
    logging.getLogger(MatMulNBitsQuantizer.__module__).setLevel(logging.WARNING)
    q = MatMulNBitsQuantizer(onnx.load(src), bits=bits, block_size=BLOCK[bits], is_symmetric=True, accuracy_level=4)
    q.process()
    onnx.save(q.model.model, dst)


def _decode_alone(cross, step, case: dict, layers: int) -> tuple[Row, list[list[np.ndarray]]]:
    """One reference case through `cross` and `step`, alone, teacher-forced along float32's
    tokens, with the engine's padding (one masked slot): its row and every step's outputs."""
    cross_kv = cross.run(None, {"encoder_hidden_states": case["hidden"]})
    tokens = [2] + case["tokens"][:-1]
    row = Row(cross_kv, tokens, layers)
    outs = []
    for s, tok in enumerate(tokens):
        out = step.run(None, step_feed([row], [s], case["tok_embeds"][tok], s + 1, row.enc_len + 1, layers))
        outs.append(out)
        for j in range(2 * layers):
            row.past[j].append(out[1 + j])
    return row, outs


def check(onnx_dir: str, suffix: str, ref, threads: int) -> dict:
    """The pair `suffix` (written under that suffix) against float32's reference cases
    (variant_check.Reference): token agreement and cosine of its logits, and the largest
    difference between rows in batches and the same rows alone (0 when batch-invariant)."""
    cross = session(path(onnx_dir, CROSS_KEY_VALUES, suffix), threads)
    step = session(path(onnx_dir, BATCHED_DECODER, suffix), threads)
    layers = len([o for o in step.get_outputs() if o.name.startswith("new_key_values.")]) // 2
    rows, alone = [], []
    agree = steps = 0
    worst_cos = 1.0
    for case in ref.cases:
        row, outs = _decode_alone(cross, step, case, layers)
        rows.append(row)
        alone.append(outs)
        logits = np.stack([o[0][0, 0] for o in outs])
        worst_cos = min(worst_cos, cosine(logits, case["logits"]))
        agree += sum(int(np.argmax(r)) == t for r, t in zip(logits, case["tokens"]))
        steps += len(case["tokens"])
    # Every case's row at a different step, with other paddings: bit for bit.
    biggest = 0.0
    n = len(rows)
    for k, (more_window, more_enc) in enumerate(PADDINGS):
        picked = [(r + k) % n for r in range(n)][: max(1, n - k % 2)]
        at = [(3 * i + 5 * k) % len(rows[r].tokens) for i, r in enumerate(picked)]
        window = max(at) + 1 + more_window
        enc = max(rows[r].enc_len for r in picked) + 1 + more_enc
        embeds = np.concatenate([ref.cases[r]["tok_embeds"][rows[r].tokens[s]] for r, s in zip(picked, at)])
        out = step.run(None, step_feed([rows[r] for r in picked], at, embeds, window, enc, layers))
        for i, (r, s) in enumerate(zip(picked, at)):
            for got, want in zip(out, alone[r][s]):
                biggest = max(biggest, float(np.max(np.abs(got[i:i + 1] - want))))
    return {"token_agreement": agree / steps, "cosine": worst_cos, "steps": steps,
            "batched_vs_alone_max_abs": biggest}


def write(onnx_dir: str, name: str, suffix: str, ref, token_agreement: float, threads: int, log=print) -> dict:
    """Writes and checks variant `name`'s pair from the float32 pair in `onnx_dir`; keeps it
    (renamed from `.partial`) only if it passes. Returns the check figures."""
    partial = f"{suffix}.partial"
    for stem in PAIR:
        src, dst = path(onnx_dir, stem, ""), path(onnx_dir, stem, partial)
        if stem == CROSS_KEY_VALUES and BITS[name] == 8:
            # Run once per request, alone: its rows need no batch invariance, and
            # ONNX Runtime's dynamic int8 product is three times MatMulNBits' pace
            # on its encoder-length rows (see the module's text).
            quantize.dynamic_matmul(src, dst)
        else:
            matmul_nbits(src, dst, BITS[name])
    try:
        f = check(onnx_dir, partial, ref, threads)
        cross = "dynamic int8" if BITS[name] == 8 else "the same"
        log(f"  {suffix} batchable decoder ({BITS[name]}-bit blocks of {BLOCK[BITS[name]]}; cross keys and values: {cross}): "
            f"tokens along float32's greedy "
            f"path {f['token_agreement']:.1%} of {f['steps']} steps, logits cosine {f['cosine']:.4f}; "
            f"rows in batches vs alone: max difference {f['batched_vs_alone_max_abs']:.1e}")
        problems = []
        if f["batched_vs_alone_max_abs"] != 0.0:
            problems.append(f"a row's numbers depend on its batch ({f['batched_vs_alone_max_abs']:.1e})")
        if not f["token_agreement"] >= token_agreement:
            problems.append(f"token agreement {f['token_agreement']:.1%} < {token_agreement:.0%}")
        if problems:
            raise AssertionError(f"the batchable decoder of {suffix} not kept: " + "; ".join(problems))
    except BaseException:
        for stem in PAIR:
            os.remove(path(onnx_dir, stem, partial))
        raise
    for stem in PAIR:
        os.replace(path(onnx_dir, stem, partial), path(onnx_dir, stem, suffix))
    return f
