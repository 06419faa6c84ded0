"""The `tiny-sdxl` checkpoint: SDXL's architecture from small configs with random weights, deterministic from a seed.

Same component layout as stabilityai/stable-diffusion-xl-base-1.0 (two CLIP text encoders, a text_time UNet, an
8x VAE, EulerDiscreteScheduler with SDXL's config), so it goes through the same builder path as the real model.
The CLIP tokenizer is byte level with no merges: a 514-token vocabulary built here, nothing downloaded.
"""
from __future__ import annotations

from pathlib import Path

import torch
from tokenizers.pre_tokenizers import ByteLevel
from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

TINY_SEED = 0
MAX_TOKENS = 77  # CLIP's context, as in SDXL
TEXT_HIDDEN = 32
PROJECTION_DIM = 32
TIME_EMBED_DIM = 8


def make_tiny_sdxl(out: Path, seed: int = TINY_SEED) -> Path:
    """Write a diffusers StableDiffusionXLPipeline checkpoint to `out` (same seed -> same weights)."""
    tokenizer = tiny_tokenizer()
    pipe = StableDiffusionXLPipeline(
        vae=_seeded(seed, _vae), text_encoder=_seeded(seed + 1, _text_encoder, len(tokenizer), CLIPTextModel),
        text_encoder_2=_seeded(seed + 2, _text_encoder, len(tokenizer), CLIPTextModelWithProjection),
        tokenizer=tokenizer, tokenizer_2=tokenizer, unet=_seeded(seed + 3, _unet), scheduler=sdxl_scheduler(),
        force_zeros_for_empty_prompt=True, add_watermarker=False)
    pipe.save_pretrained(out, safe_serialization=True)
    return Path(out)


def tiny_tokenizer() -> CLIPTokenizer:
    chars = sorted(ByteLevel.alphabet())  # the 256 byte symbols of byte-level BPE
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=[], model_max_length=MAX_TOKENS)


def sdxl_scheduler() -> EulerDiscreteScheduler:
    # stable-diffusion-xl-base-1.0/scheduler/scheduler_config.json
    return EulerDiscreteScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                  beta_schedule="scaled_linear", prediction_type="epsilon", steps_offset=1,
                                  timestep_spacing="leading", interpolation_type="linear", use_karras_sigmas=False)


def _seeded(seed: int, make, *args):
    torch.manual_seed(seed)
    return make(*args).eval()


def _text_encoder(vocab_size: int, cls):
    config = CLIPTextConfig(vocab_size=vocab_size, hidden_size=TEXT_HIDDEN, intermediate_size=64,
                            num_hidden_layers=3, num_attention_heads=4, max_position_embeddings=MAX_TOKENS,
                            projection_dim=PROJECTION_DIM, hidden_act="gelu", layer_norm_eps=1e-5,
                            bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1)
    return cls(config)


def _unet() -> UNet2DConditionModel:
    # text_time conditioning: 6 time ids x TIME_EMBED_DIM + the pooled text_embeds of text_encoder_2
    return UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, transformer_layers_per_block=(1, 1),
        cross_attention_dim=2 * TEXT_HIDDEN, norm_num_groups=8, addition_embed_type="text_time",
        addition_time_embed_dim=TIME_EMBED_DIM,
        projection_class_embeddings_input_dim=6 * TIME_EMBED_DIM + PROJECTION_DIM)


def _vae() -> AutoencoderKL:
    # Four blocks: latents are 1/8 of the image side, as in SDXL.
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16, 16, 16), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=8,
        sample_size=64, scaling_factor=0.13025, force_upcast=True)
