"""Stand-in HEFs: JSON files in place of `florence2_transformer_{encoder,decoder}.hef`
that the project's bridge stand-in (hailo-standin/) loads. Each names its ONNX
stand-in graph and describes the streams the real HEF has (HailoRT's stream
names and 3-D shapes, float32 frame sizes), so the engine's Hailo side runs in
CI against the same contract as on a device. Real HEFs come from Hailo's
Dataflow Compiler (see the README's "Raspberry Pi 5 + Hailo")."""
from __future__ import annotations

import json
import os

FORMAT = "florence-hailo-standin-hef/1"
ENCODER = "florence2_transformer_encoder"
DECODER = "florence2_transformer_decoder"


def _stream(name: str, onnx_name: str, onnx_shape: list[int]) -> dict:
    # HailoRT describes a (1, 1, N, D) tensor as height 1, width N, features D.
    rows, features = onnx_shape[-2], onnx_shape[-1]
    return {"name": name, "onnx_name": onnx_name, "shape": [1, rows, features], "onnx_shape": onnx_shape}


def write(hdir: str, n: int, d: int, window: int, vocab: int, chip: str = "hailo10h") -> None:
    """Writes both stand-in HEFs into `hdir` (beside text_encoder.onnx and decoder.onnx)."""
    encoder = {
        "format": FORMAT,
        "chip": chip,
        "onnx": "text_encoder.onnx",
        "inputs": [_stream(f"{ENCODER}/input_layer1", "inputs_embeds", [1, 1, n, d])],
        "outputs": [_stream(f"{ENCODER}/output_layer1", "last_hidden_state", [1, 1, n, d])],
    }
    decoder = {
        "format": FORMAT,
        "chip": chip,
        "onnx": "decoder.onnx",
        "inputs": [_stream(f"{DECODER}/input_layer1", "encoder_hidden_states", [1, 1, n, d]),
                   _stream(f"{DECODER}/input_layer2", "inputs_embeds", [1, 1, window, d])],
        "outputs": [_stream(f"{DECODER}/output_layer1", "logits", [1, window, vocab])],
    }
    for name, obj in ((ENCODER, encoder), (DECODER, decoder)):
        with open(os.path.join(hdir, f"{name}.hef"), "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
