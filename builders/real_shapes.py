"""Random-weight checkpoints at real architecture shapes, from the models' published configs (no hub access).

Each is created directly in its export dtype (one copy of the weights) and saved as safetensors, one model at a
time. Tokenizers are local stand-ins (the weights are random, so only their ids' range matters): the BERT
uncased WordPiece vocabulary shipped with all-MiniLM-L6-v2 (the one e5 uses), the tiny Llama's BPE, the tiny
SDXL's byte-level CLIP tokenizer.
"""
from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from pathlib import Path

# intfloat/e5-large-v2 config.json
E5_LARGE_V2 = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                   hidden_act="gelu", max_position_embeddings=512, type_vocab_size=2, vocab_size=30522,
                   layer_norm_eps=1e-12, pad_token_id=0, position_embedding_type="absolute")
# meta-llama/Llama-3.2-1B config.json, with an untied LM head (Llama-3.2-1B ties it; 8B and up do not)
LLAMA_3_2_1B = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                    num_key_value_heads=8, head_dim=64, vocab_size=128256, max_position_embeddings=131072,
                    rms_norm_eps=1e-5, rope_theta=500000.0, hidden_act="silu", tie_word_embeddings=False,
                    rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                  "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})
# stabilityai/stable-diffusion-xl-base-1.0: unet/, text_encoder/, text_encoder_2/, vae/ config.json
SDXL_UNET = dict(sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=(320, 640, 1280), attention_head_dim=(5, 10, 20),
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                 transformer_layers_per_block=(1, 2, 10), cross_attention_dim=2048, use_linear_projection=True,
                 addition_embed_type="text_time", addition_time_embed_dim=256,
                 projection_class_embeddings_input_dim=2816, norm_num_groups=32, act_fn="silu")
SDXL_TEXT_ENCODER = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                         hidden_act="quick_gelu", projection_dim=768, max_position_embeddings=77, vocab_size=49408)
SDXL_TEXT_ENCODER_2 = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
                           hidden_act="gelu", projection_dim=1280, max_position_embeddings=77, vocab_size=49408)
SDXL_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
                layers_per_block=2, down_block_types=("DownEncoderBlock2D",) * 4,
                up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32, sample_size=1024,
                scaling_factor=0.13025, force_upcast=True)
SHARD = "1GB"  # safetensors serializes a shard in memory: small shards keep the writer near one copy
_ST_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "modules.json")


@contextmanager
def created_in(dtype):
    """Parameters are created in `dtype` (no fp32 copy first); buffers that ask for a dtype keep theirs."""
    import torch  # noqa: PLC0415

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        torch.manual_seed(0)
        yield
    finally:
        torch.set_default_dtype(previous)


def make_e5_large_v2(out: Path) -> Path:
    import torch  # noqa: PLC0415
    from transformers import BertConfig, BertModel  # noqa: PLC0415

    from builders.embeddings import demo_checkpoint  # noqa: PLC0415

    with created_in(torch.float32):
        model = BertModel(BertConfig(**E5_LARGE_V2), add_pooling_layer=False).eval()
    model.save_pretrained(out)
    del model
    source = demo_checkpoint()  # the same uncased WordPiece vocabulary, mean pooling + Normalize
    for name in _ST_FILES:
        shutil.copy2(source / name, out / name)
    (out / "1_Pooling").mkdir()
    (out / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": E5_LARGE_V2["hidden_size"], "pooling_mode_mean_tokens": True}))
    (out / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 512, "do_lower_case": False}))
    return out


def make_llama_3_2_1b_untied(out: Path) -> Path:
    import torch  # noqa: PLC0415
    from transformers import LlamaConfig, LlamaForCausalLM  # noqa: PLC0415

    from builders.llm.llama3_tokenizer import llama3_tokenizer  # noqa: PLC0415
    from builders.llm.tiny import BOS, EOT, save_tokenizer  # noqa: PLC0415

    tok = llama3_tokenizer()  # Llama-3's real 128,256 ids (the LLAMA_3_2_1B config's vocab_size)
    out.mkdir(parents=True)
    save_tokenizer(tok, out)
    config = LlamaConfig(**LLAMA_3_2_1B, bos_token_id=tok.token_to_id(BOS), eos_token_id=tok.token_to_id(EOT))
    with created_in(torch.float16):
        model = LlamaForCausalLM(config).eval()
    model.save_pretrained(out, max_shard_size=SHARD)
    return out


def make_sdxl_base(out: Path) -> Path:
    """The diffusers layout written one component at a time (never two large models in memory)."""
    import diffusers  # noqa: PLC0415
    import torch  # noqa: PLC0415
    from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: PLC0415
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection  # noqa: PLC0415

    from builders.sdxl.tiny import sdxl_scheduler, tiny_tokenizer  # noqa: PLC0415

    tokenizer = tiny_tokenizer()
    special = dict(bos_token_id=len(tokenizer) - 2, eos_token_id=len(tokenizer) - 1, pad_token_id=len(tokenizer) - 1)
    components = {
        "text_encoder": (torch.float16, lambda: CLIPTextModel(CLIPTextConfig(**SDXL_TEXT_ENCODER, **special))),
        "text_encoder_2": (torch.float16, lambda: CLIPTextModelWithProjection(
            CLIPTextConfig(**SDXL_TEXT_ENCODER_2, **special))),
        "unet": (torch.float16, lambda: UNet2DConditionModel(**SDXL_UNET)),
        "vae": (torch.float32, lambda: AutoencoderKL(**SDXL_VAE)),  # SDXL's VAE overflows in fp16
    }
    index = {"_class_name": "StableDiffusionXLPipeline", "_diffusers_version": diffusers.__version__,
             "force_zeros_for_empty_prompt": True}
    for name, (dtype, make) in components.items():
        with created_in(dtype):
            model = make().eval()
        model.save_pretrained(out / name, max_shard_size=SHARD)
        index[name] = [type(model).__module__.split(".")[0], type(model).__name__]
        del model
    for name in ("tokenizer", "tokenizer_2"):
        tokenizer.save_pretrained(out / name)
        index[name] = ["transformers", "CLIPTokenizer"]
    sdxl_scheduler().save_pretrained(out / "scheduler")
    index["scheduler"] = ["diffusers", "EulerDiscreteScheduler"]
    (out / "model_index.json").write_text(json.dumps(index, indent=2))
    return out
