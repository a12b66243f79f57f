"""Export-friendly PyTorch modules for the four graphs of the onnx-community layout.

They are written against the weights of a transformers
`Florence2ForConditionalGeneration` with plain tensor operations, so that the
TorchScript exporter sees no cache objects or mask helpers. Every module is
checked against transformers' own forward before export (see export.py), so a
difference here would stop the export instead of silently producing wrong
graphs.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def _neg_inf(dtype: torch.dtype) -> float:
    return torch.finfo(dtype).min


def _channel_attention(module, hidden_states):
    """DaViT channel attention as transformers computes it, with the 1/sqrt(num_tokens)
    scale kept as a graph value: transformers computes it as a Python float, which the
    tracer would freeze at the export resolution."""
    b, n, c = hidden_states.shape
    qkv = module.qkv(hidden_states).reshape(b, n, 3, module.groups, c // module.groups).permute(2, 0, 3, 4, 1)
    q, k, v = qkv.unbind(0)
    scale = torch.rsqrt(torch.ones_like(hidden_states[0, :, 0]).sum())
    out = torch.matmul(torch.softmax(torch.matmul(q * scale, k.transpose(-1, -2)), dim=-1), v)
    return module.proj(out.permute(0, 3, 1, 2).reshape(b, n, c))


class _ChannelAttention(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, hidden_states):
        return _channel_attention(self.inner, hidden_states)


class VisionEncoder(nn.Module):
    """pixel_values [B,3,H,W] -> image_features [B,(H/32)(W/32)+1,D]."""

    def __init__(self, model):
        super().__init__()
        self.backbone = copy.deepcopy(model.model.vision_tower)
        targets = [
            (module, name, child)
            for module in self.backbone.modules()
            for name, child in module.named_children()
            if type(child).__name__ == "Florence2VisionChannelAttention"
        ]
        for module, name, child in targets:
            setattr(module, name, _ChannelAttention(child))
        self.projector = model.model.multi_modal_projector

    def forward(self, pixel_values):
        hidden = pixel_values
        for conv, blocks in zip(self.backbone.convs, self.backbone.blocks):
            hidden = conv(hidden)
            for block in blocks:
                hidden = block(hidden)
        return self.projector(hidden)


class EmbedTokens(nn.Module):
    """input_ids [B,S] -> inputs_embeds [B,S,D] (Florence-2's BART: scale 1.0, no positions)."""

    def __init__(self, model):
        super().__init__()
        self.embed = model.get_input_embeddings()

    def forward(self, input_ids):
        return self.embed(input_ids)


def _heads(x, n_heads):
    b, t, d = x.shape
    return x.view(b, t, n_heads, d // n_heads).transpose(1, 2)


def _merge(x):
    b, h, t, dh = x.shape
    return x.transpose(1, 2).reshape(b, t, h * dh)


def _attend(q, k, v, mask, scaling):
    scores = torch.matmul(q, k.transpose(2, 3)) * scaling
    if mask is not None:
        scores = scores + mask
    return torch.matmul(torch.softmax(scores, dim=-1), v)


class TextEncoder(nn.Module):
    """attention_mask [B,L] i64, inputs_embeds [B,L,D] -> last_hidden_state [B,L,D]."""

    def __init__(self, model):
        super().__init__()
        enc = model.model.language_model.encoder
        self.positions = enc.embed_positions
        self.norm = enc.layernorm_embedding
        self.layers = enc.layers
        self.heads = enc.config.encoder_attention_heads

    def forward(self, attention_mask, inputs_embeds):
        length = inputs_embeds.shape[1]
        pos_ids = torch.arange(length, device=inputs_embeds.device) + self.positions.offset
        hidden = self.norm(inputs_embeds + self.positions.weight[pos_ids])
        mask = (1.0 - attention_mask[:, None, None, :].to(hidden.dtype)) * _neg_inf(hidden.dtype)
        for layer in self.layers:
            att = layer.self_attn
            q = _heads(att.q_proj(hidden), self.heads)
            k = _heads(att.k_proj(hidden), self.heads)
            v = _heads(att.v_proj(hidden), self.heads)
            hidden = layer.self_attn_layer_norm(hidden + att.out_proj(_merge(_attend(q, k, v, mask, att.scaling))))
            ffn = layer.fc2(layer.activation_fn(layer.fc1(hidden)))
            hidden = layer.final_layer_norm(hidden + ffn)
        return hidden


class Decoder(nn.Module):
    """BART decoder step with an explicit key/value cache.

    with_past=False: inputs (encoder_attention_mask, encoder_hidden_states, inputs_embeds);
    with_past=True: the same plus, per layer, past decoder key/value and past encoder key/value.
    Outputs logits and, per layer, present decoder key/value and encoder key/value (with
    past: a zero-length placeholder, since the encoder K/V of the first step stay valid).
    """

    def __init__(self, model, with_past: bool):
        super().__init__()
        dec = model.model.language_model.decoder
        self.positions = dec.embed_positions
        self.norm = dec.layernorm_embedding
        self.layers = dec.layers
        self.heads = dec.config.decoder_attention_heads
        self.lm_head = model.lm_head
        self.with_past = with_past

    def forward(self, encoder_attention_mask, encoder_hidden_states, inputs_embeds, *past):
        b, t, _ = inputs_embeds.shape
        past_len = past[0].shape[2] if self.with_past else 0
        pos_ids = torch.arange(t, device=inputs_embeds.device) + past_len + self.positions.offset
        hidden = self.norm(inputs_embeds + self.positions.weight[pos_ids])
        dtype = hidden.dtype
        total = past_len + t
        # Query i (absolute position past_len + i) sees keys 0..past_len + i.
        q_pos = torch.arange(t, device=hidden.device)[:, None] + past_len
        k_pos = torch.arange(total, device=hidden.device)[None, :]
        causal = (k_pos > q_pos).to(dtype)[None, None] * _neg_inf(dtype)
        cross_mask = (1.0 - encoder_attention_mask[:, None, None, :].to(dtype)) * _neg_inf(dtype)
        presents = []
        for i, layer in enumerate(self.layers):
            sa = layer.self_attn
            q = _heads(sa.q_proj(hidden), self.heads)
            k = _heads(sa.k_proj(hidden), self.heads)
            v = _heads(sa.v_proj(hidden), self.heads)
            if self.with_past:
                k = torch.cat([past[4 * i], k], dim=2)
                v = torch.cat([past[4 * i + 1], v], dim=2)
            hidden = layer.self_attn_layer_norm(hidden + sa.out_proj(_merge(_attend(q, k, v, causal, sa.scaling))))
            ca = layer.encoder_attn
            cq = _heads(ca.q_proj(hidden), self.heads)
            if self.with_past:
                ck, cv = past[4 * i + 2], past[4 * i + 3]
                enc_k_out, enc_v_out = ck[:, :, :0, :], cv[:, :, :0, :]
            else:
                ck = _heads(ca.k_proj(encoder_hidden_states), self.heads)
                cv = _heads(ca.v_proj(encoder_hidden_states), self.heads)
                enc_k_out, enc_v_out = ck, cv
            hidden = layer.encoder_attn_layer_norm(
                hidden + ca.out_proj(_merge(_attend(cq, ck, cv, cross_mask, ca.scaling)))
            )
            ffn = layer.fc2(layer.activation_fn(layer.fc1(hidden)))
            hidden = layer.final_layer_norm(hidden + ffn)
            presents += [k, v, enc_k_out, enc_v_out]
        return (self.lm_head(hidden), *presents)


class HailoTextEncoder(nn.Module):
    """Static-shape stand-in for the Hailo text-encoder HEF: inputs_embeds [1,1,N,D] -> [1,1,N,D]."""

    def __init__(self, model):
        super().__init__()
        self.encoder = TextEncoder(model)

    def forward(self, inputs_embeds):
        x = inputs_embeds[:, 0]
        mask = torch.ones(x.shape[:2], dtype=torch.int64)
        return self.encoder(mask, x).unsqueeze(1)


class HailoDecoder(nn.Module):
    """Static-shape stand-in for the Hailo decoder HEF: a fixed window of decoder
    embeddings [1,1,W,D] and encoder states [1,1,N,D] -> logits [1,W,V], no cache."""

    def __init__(self, model):
        super().__init__()
        self.decoder = Decoder(model, with_past=False)

    def forward(self, encoder_hidden_states, inputs_embeds):
        enc = encoder_hidden_states[:, 0]
        mask = torch.ones(enc.shape[:2], dtype=torch.int64)
        return self.decoder(mask, enc, inputs_embeds[:, 0])[0]


class CrossKeyValues(nn.Module):
    """encoder_hidden_states [B,E,D] -> per layer the cross-attention key and value
    [B,H,E,Dh]: what every later step of the batched decoder reads, computed once
    per request (the merged decoder computes them in its first step)."""

    def __init__(self, model):
        super().__init__()
        dec = model.model.language_model.decoder
        self.layers = dec.layers
        self.heads = dec.config.decoder_attention_heads

    def forward(self, encoder_hidden_states):
        out = []
        for layer in self.layers:
            ca = layer.encoder_attn
            out += [_heads(ca.k_proj(encoder_hidden_states), self.heads),
                    _heads(ca.v_proj(encoder_hidden_states), self.heads)]
        return tuple(out)


class BatchedDecoder(nn.Module):
    """One decoder step for B rows that may belong to different requests.

    Each row brings its own position (its past length), its past decoder keys and
    values padded to a common window W with `self_attention_mask` 1 on the valid
    slots, and its cross-attention keys and values padded to a common E with
    `encoder_attention_mask` 1 on the valid ones. The step's own key and value come
    first among the keys, so padding only ever appends masked slots at the end and
    a row's numbers need not change with W or E. Outputs the logits and, per layer,
    the step's new decoder key and value [B,H,1,Dh], which the caller writes into
    its row's window at the row's position.

    Inputs: inputs_embeds [B,1,D], position_ids [B,1] i64, self_attention_mask [B,W] i64,
    encoder_attention_mask [B,E] i64, then per layer past decoder key, value [B,H,W,Dh]
    and cross key, value [B,H,E,Dh].
    """

    def __init__(self, model):
        super().__init__()
        dec = model.model.language_model.decoder
        self.positions = dec.embed_positions
        self.norm = dec.layernorm_embedding
        self.layers = dec.layers
        self.heads = dec.config.decoder_attention_heads
        self.lm_head = model.lm_head

    def forward(self, inputs_embeds, position_ids, self_attention_mask, encoder_attention_mask, *past):
        hidden = self.norm(inputs_embeds + self.positions.weight[position_ids + self.positions.offset])
        dtype = hidden.dtype
        own = torch.ones_like(self_attention_mask[:, :1])
        keys_valid = torch.cat([own, self_attention_mask], dim=1)
        self_mask = (1.0 - keys_valid[:, None, None, :].to(dtype)) * _neg_inf(dtype)
        cross_mask = (1.0 - encoder_attention_mask[:, None, None, :].to(dtype)) * _neg_inf(dtype)
        news = []
        for i, layer in enumerate(self.layers):
            sa = layer.self_attn
            q = _heads(sa.q_proj(hidden), self.heads)
            k_new = _heads(sa.k_proj(hidden), self.heads)
            v_new = _heads(sa.v_proj(hidden), self.heads)
            k = torch.cat([k_new, past[4 * i]], dim=2)
            v = torch.cat([v_new, past[4 * i + 1]], dim=2)
            hidden = layer.self_attn_layer_norm(hidden + sa.out_proj(_merge(_attend(q, k, v, self_mask, sa.scaling))))
            ca = layer.encoder_attn
            cq = _heads(ca.q_proj(hidden), self.heads)
            hidden = layer.encoder_attn_layer_norm(
                hidden + ca.out_proj(_merge(_attend(cq, past[4 * i + 2], past[4 * i + 3], cross_mask, ca.scaling)))
            )
            ffn = layer.fc2(layer.activation_fn(layer.fc1(hidden)))
            hidden = layer.final_layer_norm(hidden + ffn)
            news += [k_new, v_new]
        return (self.lm_head(hidden), *news)
