"""The tiny Llama-3-shaped test/demo model: random weights from a seed on Llama-3's real tokenizer (128,256 ids,
rebuilt from the llama3-tokenizer-js package), Llama-3.1's special tokens, stop tokens and Instruct chat template.
Deterministic from the seed."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from builders.llm.llama3_tokenizer import llama3_tokenizer
from runtime.llm.families.llama3 import FAMILY

LOGIT_SPREAD = 3.0


@dataclass(frozen=True)
class TinySpec:
    seed: int = 0
    hidden_size: int = 64
    intermediate_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    max_model_len: int = 2048
    tie_word_embeddings: bool = False


def save_tokenizer(tok, out: Path) -> None:
    """Save loadable by transformers 4.x and 5 (PreTrainedTokenizerFast, template inside tokenizer_config)."""
    from transformers import PreTrainedTokenizerFast  # noqa: PLC0415

    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=FAMILY.bos_token, eos_token=FAMILY.eos_token,
                                   chat_template=FAMILY.chat_template,
                                   model_max_length=10**6, clean_up_tokenization_spaces=False)
    try:
        fast.save_pretrained(out, save_jinja_files=False)
    except TypeError:  # transformers 4.x has no save_jinja_files
        fast.save_pretrained(out)
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg.setdefault("chat_template", FAMILY.chat_template)
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False))
    (out / "chat_template.jinja").unlink(missing_ok=True)


def make_tiny_llama(out: Path, spec: TinySpec = TinySpec(), tokenizer_package: Path | None = None) -> Path:
    """Write a Hugging Face Llama-3-style checkpoint (config, safetensors, tokenizer) to `out`.
    `tokenizer_package`: the llama3-tokenizer-js .tgz or folder (default: see builders.llm.llama3_tokenizer)."""
    import torch  # noqa: PLC0415
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM  # noqa: PLC0415

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = llama3_tokenizer(tokenizer_package)
    bos = tok.token_to_id(FAMILY.bos_token)
    # Llama-3.1 Instruct's generation_config: every stop token of the family ends generation.
    stops = [tok.token_to_id(t) for t in FAMILY.stop_tokens]
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=spec.hidden_size, intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers, num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads, max_position_embeddings=spec.max_model_len, rms_norm_eps=1e-5,
        rope_theta=500000.0, tie_word_embeddings=spec.tie_word_embeddings, bos_token_id=bos, eos_token_id=stops,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": max(spec.max_model_len // 8, 16)},
    )
    torch.manual_seed(spec.seed)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # larger than the default init so that the logits are not flat
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.5 / p.shape[1] ** 0.5 * 4)
        # Logits with a spread like a trained model's (std ~6): a peaked next-token distribution over 128,256 ids,
        # not a near-flat one where float noise from batch neighbours moves a seeded sample to another token.
        model.lm_head.weight.mul_(LOGIT_SPREAD)
    model.save_pretrained(out)
    GenerationConfig(bos_token_id=bos, eos_token_id=stops, do_sample=False).save_pretrained(out)
    save_tokenizer(tok, out)
    return out
