"""The tiny Llama-3-shaped test/demo model: random weights from a seed, a byte-level BPE tokenizer trained
here on a generated corpus, Llama-3's special tokens and chat template. Deterministic from the seed."""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

# Llama-3's special tokens, appended after the trained vocabulary like in the real tokenizer.
SPECIAL_TOKENS = [
    "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>", "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>",
    "<|eom_id|>", "<|eot_id|>", "<|python_tag|>",
]
BOS, EOT, END_OF_TEXT = "<|begin_of_text|>", "<|eot_id|>", "<|end_of_text|>"

# Meta-Llama-3-8B-Instruct's chat template.
CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
    "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
# Llama-3's pre-tokenizer split (tiktoken cl100k-style pattern).
SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
_WORDS = (
    "the of and to in is that it was for on are as with his they at be this from have or by one had not but "
    "what all were when we there can an your which their said if do will each about how up out them then she "
    "many some so these would other into has more her two like him see time could no make than first been its "
    "who now people my made over did down only way find use may water long little very after words called just "
    "where most know get through back much before go good new write our used me man too any day same right look "
    "think also around another came come work three word must because does part even place well such here take "
    "why things help put years different away again off went old number great tell men say small every found "
    "still between name should home big give air line set own under read last never us left end along while "
    "might next sound below saw something thought both few those always looked show large often together asked "
    "house don't world going want school important until form food keep children feet land side without boy once "
    "animals life enough took sometimes four head above kind began almost live page got earth need far hand high "
    "year mother light parts country father let night following picture being study second eyes soon times story "
    "boys since white days ever paper hard near sentence better best across during today others however sure means "
    "model server token stream batch cache prompt reply assistant user system hello world question answer "
    "café naïve résumé über straße 東京 日本語 你好 привет мир 🙂 🚀 ✓ — … € £"
).split()


@dataclass(frozen=True)
class TinySpec:
    seed: int = 0
    hidden_size: int = 64
    intermediate_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    vocab_size: int = 2048  # BPE target; the special tokens come on top
    max_model_len: int = 2048
    tie_word_embeddings: bool = False


def make_corpus(seed: int, sentences: int = 4000) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for _ in range(sentences):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 16))]
        if rng.random() < 0.3:
            words.insert(rng.randint(0, len(words)), str(rng.randint(0, 99999)))
        lines.append(" ".join(words).capitalize() + rng.choice([".", "?", "!", ",", ":", ";"]))
    return lines


def train_tokenizer(spec: TinySpec):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: PLC0415

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=spec.vocab_size, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(make_corpus(spec.seed), trainer=trainer)
    tok.add_special_tokens(SPECIAL_TOKENS)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS}:0 $A:0", pair=f"{BOS}:0 $A:0 {BOS}:1 $B:1", special_tokens=[(BOS, bos_id)])
    return tok


def save_tokenizer(tok, out: Path) -> None:
    """Save loadable by transformers 4.x and 5 (PreTrainedTokenizerFast, template inside tokenizer_config)."""
    from transformers import PreTrainedTokenizerFast  # noqa: PLC0415

    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOT, chat_template=CHAT_TEMPLATE,
                                   model_max_length=10**6, clean_up_tokenization_spaces=False)
    try:
        fast.save_pretrained(out, save_jinja_files=False)
    except TypeError:  # transformers 4.x has no save_jinja_files
        fast.save_pretrained(out)
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg.setdefault("chat_template", CHAT_TEMPLATE)
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False))
    (out / "chat_template.jinja").unlink(missing_ok=True)


def make_tiny_llama(out: Path, spec: TinySpec = TinySpec()) -> Path:
    """Write a Hugging Face Llama-3-style checkpoint (config, safetensors, tokenizer) to `out`."""
    import torch  # noqa: PLC0415
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM  # noqa: PLC0415

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer(spec)
    bos, eot, eos = (tok.token_to_id(t) for t in (BOS, EOT, END_OF_TEXT))
    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=spec.hidden_size, intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_layers, num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads, max_position_embeddings=spec.max_model_len, rms_norm_eps=1e-5,
        rope_theta=500000.0, tie_word_embeddings=spec.tie_word_embeddings, bos_token_id=bos, eos_token_id=[eos, eot],
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": max(spec.max_model_len // 8, 16)},
    )
    torch.manual_seed(spec.seed)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # larger than the default init so that the logits are not flat
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.5 / p.shape[1] ** 0.5 * 4)
    model.save_pretrained(out)
    GenerationConfig(bos_token_id=bos, eos_token_id=[eos, eot], do_sample=False).save_pretrained(out)
    save_tokenizer(tok, out)
    return out
