"""Read a Hugging Face encoder checkpoint dir: architecture, tokenizer limits, and pooling from the
sentence-transformers files (modules.json, <pooling>/config.json, sentence_bert_config.json) where present."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from builders.progress import BuildError
from runtime.embeddings.pooling import PoolingMode, PoolingSpec

# Encoder-only families that transformers' AutoModel exports as one graph: ids + mask -> token states.
SUPPORTED_TYPES = {"bert", "roberta", "xlm-roberta", "distilbert", "mpnet", "electra", "camembert"}
_ST = "sentence_transformers.models."
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "sentencepiece.bpe.model", "spiece.model", "vocab.json")


@dataclass(frozen=True)
class EncoderCheckpoint:
    path: Path
    model_type: str
    hidden_size: int
    max_length: int  # tokens per input, special tokens included
    pooling: PoolingSpec
    pooling_source: str  # where pooling came from, for the build log


def _read_json(path: Path) -> dict | list:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise BuildError(f"cannot read {path}: {exc}") from exc


def _pooling_mode(config: dict, where: Path) -> PoolingMode:
    if isinstance(config.get("pooling_mode"), str):  # newer sentence-transformers write one key
        name = config["pooling_mode"]
    else:
        modes = [k[len("pooling_mode_"):] for k, v in config.items() if k.startswith("pooling_mode_") and v]
        name = modes[0] if len(modes) == 1 else "+".join(modes) or "none"
    aliases = {"mean_tokens": "mean", "cls_token": "cls", "mean": "mean", "cls": "cls"}
    if name not in aliases:
        raise BuildError(f"unsupported pooling '{name}' in {where}: mean or cls pooling is supported")
    return PoolingMode(aliases[name])


def _st_pooling(path: Path) -> PoolingSpec | None:
    """Pooling + normalization from modules.json; None when the checkpoint has no sentence-transformers config."""
    modules_file = path / "modules.json"
    if not modules_file.exists():
        return None
    modules = _read_json(modules_file)
    types = [m["type"].removeprefix(_ST) for m in modules]
    extra = [t for t in types if t not in ("Transformer", "Pooling", "Normalize")]
    if extra:
        raise BuildError(f"unsupported sentence-transformers modules {extra} in {modules_file}: "
                         "only Transformer, Pooling and Normalize are served")
    pooling = next((m for m in modules if m["type"].endswith("Pooling")), None)
    if pooling is None:
        raise BuildError(f"{modules_file} has no Pooling module")
    config_file = path / pooling["path"] / "config.json"
    return PoolingSpec(_pooling_mode(_read_json(config_file), config_file), "Normalize" in types)


def _max_length(path: Path, config: dict) -> int:
    st_config = path / "sentence_bert_config.json"
    if st_config.exists() and _read_json(st_config).get("max_seq_length"):
        return int(_read_json(st_config)["max_seq_length"])
    tok_config = path / "tokenizer_config.json"
    declared = _read_json(tok_config).get("model_max_length", 0) if tok_config.exists() else 0
    positions = int(config.get("max_position_embeddings", 512))
    # RoBERTa-style models reserve two positions for the padding offset.
    usable = positions - 2 if config["model_type"] in ("roberta", "xlm-roberta", "camembert") else positions
    return min(int(declared), usable) if 0 < declared < 10**6 else usable


def read_checkpoint(path: Path, pooling_override: PoolingSpec | None = None) -> EncoderCheckpoint:
    path = Path(path)
    if not path.is_dir():
        raise BuildError(f"checkpoint directory {path} does not exist")
    if not (path / "config.json").exists():
        raise BuildError(f"{path} is not a Hugging Face checkpoint: config.json is missing")
    config = _read_json(path / "config.json")
    model_type = config.get("model_type", "?")
    if model_type not in SUPPORTED_TYPES:
        raise BuildError(f"unsupported model type '{model_type}' in {path}/config.json: the embeddings builder "
                         f"exports encoder models ({', '.join(sorted(SUPPORTED_TYPES))})")
    if not any((path / name).exists() for name in _TOKENIZER_FILES):
        raise BuildError(f"no tokenizer files in {path} (looked for {', '.join(_TOKENIZER_FILES)})")
    if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
        raise BuildError(f"no weights in {path} (*.safetensors or *.bin)")
    st_pooling = _st_pooling(path)
    pooling = pooling_override or st_pooling or PoolingSpec(PoolingMode.MEAN, True)
    source = ("command line" if pooling_override else "sentence-transformers config" if st_pooling
              else "default (mean + L2)")
    return EncoderCheckpoint(path, model_type, int(config.get("hidden_size", config.get("dim", 0))),
                             _max_length(path, config), pooling, source)
