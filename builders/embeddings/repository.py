"""Place an encoder engine and its tokenizer in a Triton model repository as one client-facing model.

<id>             ensemble (public id, openai_task=embeddings): TEXT | TOKEN_IDS -> EMBEDDINGS, TOKEN_COUNTS
<id>__tokenizer  Python backend: tokenizer files in 1/tokenizer/
<id>__encoder    Python backend running the engine in 1/ (ONNX Runtime here) + pooling, dynamic batching
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from builders.embeddings.checkpoint import EncoderCheckpoint
from builders.profiles import encoder_ranges, length_tiers, write_plan
from builders.progress import BuildError
from builders.target import CPU_TARGET, BuildTarget
from builders.triton_config import load_config, set_parameters, write_model
from runtime.contract import TASK_PARAMETER, Task
from runtime.embeddings.params import EncoderParams, TokenizerParams
from runtime.embeddings.tokenization import MAX_INPUTS
from runtime.embeddings.session import OrtOptions

_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class ServingOptions:
    max_batch_size: int = MAX_INPUTS  # the API's limit of inputs per request must fit one Triton request
    max_queue_delay_us: int = 2000  # how long the batcher waits for more requests to merge
    max_batch_tokens: int = 1024  # see runtime.embeddings.params
    ort: OrtOptions = OrtOptions()
    target: BuildTarget = CPU_TARGET

    @classmethod
    def for_target(cls, target: BuildTarget, max_batch_size: int = MAX_INPUTS, max_queue_delay_us: int = 2000,
                   max_batch_tokens: int | None = None, ort: OrtOptions = OrtOptions()) -> "ServingOptions":
        """GPU engines take far larger calls than the ~1k tokens that suit a CPU's caches."""
        tokens = max_batch_tokens or (GPU_BATCH_TOKENS if target.on_gpu else 1024)
        return cls(max_batch_size, max_queue_delay_us, tokens, ort, target.for_family("embeddings"))


GPU_BATCH_TOKENS = 16384


def internal_names(model_id: str) -> tuple[str, str]:
    return f"{model_id}__tokenizer", f"{model_id}__encoder"


def check_model_id(model_id: str) -> str:
    if not _MODEL_ID.match(model_id) or "__" in model_id:
        raise BuildError(f"model id '{model_id}' must be letters, digits, '.', '_' or '-' (no '__'): "
                         "it names Triton model folders")
    return model_id


def _write_tokenizer(repo: Path, name: str, checkpoint: EncoderCheckpoint) -> None:
    from transformers import AutoTokenizer  # noqa: PLC0415

    config = load_config("embedding_tokenizer")
    config.name = name
    set_parameters(config, **TokenizerParams(checkpoint.max_length).to_parameters())
    version = write_model(repo, config, "embedding_tokenizer")
    AutoTokenizer.from_pretrained(str(checkpoint.path)).save_pretrained(str(version / "tokenizer"))


def _write_encoder(repo: Path, name: str, checkpoint: EncoderCheckpoint, engine: Path,
                   options: ServingOptions) -> None:
    config = load_config("embedding_encoder")
    config.name = name
    config.max_batch_size = options.max_batch_size
    config.dynamic_batching.max_queue_delay_microseconds = options.max_queue_delay_us
    target = options.target
    tiers = length_tiers(checkpoint.max_length) if target.engine.compiled else ()
    params = EncoderParams(checkpoint.pooling, options.ort, options.max_batch_tokens, engine.name, tiers)
    set_parameters(config, **params.to_parameters())
    target.apply(config)
    version = write_model(repo, config, "embedding_encoder")
    shutil.copy2(engine, version / engine.name)
    for data in {engine.name + ".data", "model.onnx.data"}:  # external weights of large graphs (pooled: shared)
        if (engine.parent / data).exists():
            shutil.copy2(engine.parent / data, version / data)
    if target.engine.compiled:
        ranges = encoder_ranges(checkpoint.max_length, options.max_batch_size, options.max_batch_tokens, tiers)
        write_plan(version / engine.name, target.component().precision.value, ranges)


def _write_ensemble(repo: Path, model_id: str, checkpoint: EncoderCheckpoint, tokenizer: str, encoder: str,
                    vocab_size: int, options: ServingOptions) -> None:
    config = load_config("embedding_ensemble")
    config.name = model_id
    config.ensemble_scheduling.step[0].model_name = tokenizer
    config.ensemble_scheduling.step[1].model_name = encoder
    # What the adapter needs to know without asking the model (ServedModel.parameters).
    set_parameters(config, **{TASK_PARAMETER: Task.EMBEDDINGS.value, "embedding_size": checkpoint.hidden_size,
                              "max_input_tokens": checkpoint.max_length, "vocab_size": vocab_size,
                              "normalized": str(checkpoint.pooling.normalize).lower(),
                              "pooling": checkpoint.pooling.mode.value})
    options.target.apply(config, place=False)  # an ensemble has no instances
    write_model(repo, config)


def write_embedding_model(repo: Path, model_id: str, checkpoint: EncoderCheckpoint, engine: Path,
                          options: ServingOptions = ServingOptions()) -> str:
    from transformers import AutoTokenizer  # noqa: PLC0415

    check_model_id(model_id)
    tokenizer, encoder = internal_names(model_id)
    for name in (model_id, tokenizer, encoder):
        shutil.rmtree(Path(repo) / name, ignore_errors=True)
    _write_tokenizer(repo, tokenizer, checkpoint)
    _write_encoder(repo, encoder, checkpoint, engine, options)
    vocab_size = len(AutoTokenizer.from_pretrained(str(checkpoint.path)))
    _write_ensemble(repo, model_id, checkpoint, tokenizer, encoder, vocab_size, options)
    return model_id
