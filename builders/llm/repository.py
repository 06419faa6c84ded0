"""Write the generator model folder: config.pbtxt from the llm_generator template, decoder graph, tokenizer."""
from __future__ import annotations

import shutil
from pathlib import Path

from builders.llm.export import check_checkpoint, export_decoder
from builders.llm.kv_cache import KvCacheDtype
from builders.progress import BuildError, step
from builders.target import CPU_TARGET, BuildTarget
from builders.triton_config import load_config, set_parameters, write_model
from runtime.contract import TASK_PARAMETER, Task
from runtime.llm.families import FAMILY_PARAMETER, family_for_checkpoint
from runtime.llm.families.base import ModelFamily
from runtime.llm.protocol import GeneratorConfig

TEMPLATE = "llm_generator"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json",
                   "chat_template.jinja")


def build_model(checkpoint: Path, repo: Path, model_id: str, *, work: Path, max_batch_size: int = 32,
                max_model_len: int | None = None, intra_op_threads: int = 0,
                target: BuildTarget = CPU_TARGET, kv_cache_dtype: KvCacheDtype = KvCacheDtype.AUTO) -> Path:
    checkpoint = Path(checkpoint)
    target = target.for_family("llm")
    if not (checkpoint / "tokenizer.json").exists():
        raise BuildError(f"{checkpoint}: no tokenizer.json (a fast tokenizer is required)")
    cfg = check_checkpoint(checkpoint)
    family = chat_family(checkpoint, cfg)
    onnx_dir = Path(work) / "onnx"
    shutil.rmtree(onnx_dir, ignore_errors=True)
    with step(f"llm: {checkpoint.name} -> {target.precision.value} decoder graph (onnxruntime-genai), "
              f"{kv_cache_dtype.value} KV cache -> {work}"):
        export_decoder(checkpoint, onnx_dir, target.precision, target.device, work=Path(work) / "genai",
                       kv_cache_dtype=kv_cache_dtype)
    context = min(max_model_len or cfg["max_position_embeddings"], cfg["max_position_embeddings"])
    with step(f"llm: write model {model_id}"):
        config = load_config(TEMPLATE)
        config.name = model_id
        generator = GeneratorConfig(max_model_len=context, vocab_size=cfg["vocab_size"],
                                    max_batch_size=max_batch_size, engine="model.onnx",
                                    intra_op_threads=intra_op_threads, kv_cache_dtype=kv_cache_dtype.value)
        set_parameters(config, **{TASK_PARAMETER: Task.TEXT_GENERATION.value, FAMILY_PARAMETER: family.name},
                       **generator.to_parameters())
        target.apply(config)
        version_dir = write_model(repo, config, TEMPLATE)
        for f in onnx_dir.iterdir():
            shutil.move(str(f), version_dir / f.name)
        tok_dir = version_dir / "tokenizer"
        tok_dir.mkdir(exist_ok=True)
        for name in TOKENIZER_FILES:
            if (checkpoint / name).exists():
                shutil.copy2(checkpoint / name, tok_dir / name)
    return version_dir


def chat_family(checkpoint: Path, cfg: dict) -> ModelFamily:
    """The model family whose chat format the checkpoint speaks (its config.json `model_type`)."""
    family = family_for_checkpoint(cfg)
    if family is None:
        raise BuildError(f"{checkpoint}: no model family serves model_type {cfg.get('model_type')!r} "
                         f"(runtime/llm/families)")
    return family
