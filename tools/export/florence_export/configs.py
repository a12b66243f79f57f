"""Config files in the layout of the public onnx-community Florence-2 export.

That layout is the original (pre-transformers-v5) one: `text_config` with BART
keys, `vision_config` with `dim_embed`, top-level `projection_dim` and
`num_image_tokens`. transformers v5 writes another layout for the same model;
users download this one, so the exporter writes it too.
"""

from __future__ import annotations


def model_config(config, image_size: int) -> dict:
    t = config.text_config
    v = config.vision_config
    num_image_tokens = (image_size // 32) ** 2 + 1
    text = {
        "activation_dropout": t.activation_dropout,
        "activation_function": t.activation_function,
        "add_bias_logits": False,
        "add_final_layer_norm": False,
        "attention_dropout": t.attention_dropout,
        "bos_token_id": t.bos_token_id,
        "classif_dropout": 0.1,
        "classifier_dropout": 0.0,
        "d_model": t.d_model,
        "decoder_attention_heads": t.decoder_attention_heads,
        "decoder_ffn_dim": t.decoder_ffn_dim,
        "decoder_layerdrop": 0.0,
        "decoder_layers": t.decoder_layers,
        "decoder_start_token_id": t.decoder_start_token_id,
        "dropout": t.dropout,
        "early_stopping": True,
        "encoder_attention_heads": t.encoder_attention_heads,
        "encoder_ffn_dim": t.encoder_ffn_dim,
        "encoder_layerdrop": 0.0,
        "encoder_layers": t.encoder_layers,
        "eos_token_id": t.eos_token_id,
        "forced_bos_token_id": 0,
        "forced_eos_token_id": 2,
        "init_std": 0.02,
        "is_encoder_decoder": True,
        "length_penalty": 1.0,
        "max_position_embeddings": t.max_position_embeddings,
        "model_type": "florence2_language",
        "no_repeat_ngram_size": 3,
        "normalize_before": False,
        "num_beams": 3,
        "num_hidden_layers": t.encoder_layers,
        "pad_token_id": t.pad_token_id,
        "scale_embedding": t.scale_embedding,
        "tie_word_embeddings": True,
        "use_cache": True,
        "vocab_size": t.vocab_size,
    }
    vision = {
        "depths": list(v.depths),
        "dim_embed": list(v.embed_dim),
        "drop_path_rate": v.drop_path_rate,
        "enable_checkpoint": False,
        "image_feature_source": ["spatial_avg_pool", "temporal_avg_pool"],
        "image_pos_embed": {"max_pos_embeddings": v.max_position_embeddings, "type": "learned_abs_2d"},
        "model_type": "",
        "num_groups": list(v.num_groups),
        "num_heads": list(v.num_heads),
        "patch_padding": list(v.patch_padding),
        "patch_prenorm": list(v.patch_prenorm),
        "patch_size": list(v.patch_size),
        "patch_stride": list(v.patch_stride),
        "projection_dim": v.projection_dim,
        "visual_temporal_embedding": {"max_temporal_embeddings": v.max_temporal_embeddings, "type": "COSINE"},
        "window_size": v.window_size,
    }
    return {
        "_name_or_path": "florence-tiny",
        "architectures": ["Florence2ForConditionalGeneration"],
        "bos_token_id": t.bos_token_id,
        "eos_token_id": t.eos_token_id,
        "ignore_index": -100,
        "is_encoder_decoder": True,
        "model_type": "florence2",
        "num_image_tokens": num_image_tokens,
        "pad_token_id": t.pad_token_id,
        "projection_dim": v.projection_dim,
        "text_config": text,
        "transformers_version": "4.42.0.dev0",
        "use_cache": True,
        "vision_config": vision,
        "vocab_size": t.vocab_size,
    }


def generation_config(config) -> dict:
    t = config.text_config
    return {
        "_from_model_config": True,
        "bos_token_id": t.bos_token_id,
        "decoder_start_token_id": t.decoder_start_token_id,
        "early_stopping": True,
        "eos_token_id": t.eos_token_id,
        "forced_bos_token_id": t.bos_token_id,
        "forced_eos_token_id": t.eos_token_id,
        "no_repeat_ngram_size": 3,
        "num_beams": 3,
        "pad_token_id": t.pad_token_id,
        "transformers_version": "4.42.0.dev0",
    }


def preprocessor_config(image_size: int, mean, std) -> dict:
    return {
        "crop_size": {"height": image_size, "width": image_size},
        "do_center_crop": False,
        "do_convert_rgb": None,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": list(mean),
        "image_processor_type": "CLIPImageProcessor",
        "image_seq_length": (image_size // 32) ** 2 + 1,
        "image_std": list(std),
        "processor_class": "Florence2Processor",
        "resample": 3,
        "rescale_factor": 1 / 255,
        "size": {"height": image_size, "width": image_size},
    }
