"""Which engine runs an LLM entry's jobs, chosen by the entry's `engine_kind` parameter (no `if engine ==`).

An engine takes jobs (runtime/llm/sequence.py: prompt, sampling parameters, response sink) and streams their
responses; it has start(), stop(), submit(job) and the Vocab its jobs decode with. Each builder names its module
lazily, so the ONNX Runtime path never imports TensorRT-LLM and the other way round.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import ClassVar, Protocol

from runtime.llm.grammar import GrammarEngine
from runtime.llm.protocol import GeneratorConfig
from runtime.llm.sequence import Job, Vocab
from runtime.llm.session import EngineSession
from runtime.llm.slot_table import PrefixStats
from runtime.llm.tokenizer import ChatTokenizer
from runtime.target import EngineKind, EngineTarget

# engine_kind -> "module:function(model_dir, config, tokenizer, session, target, device_id) -> JobEngine";
# every ONNX Runtime kind (CPU, CUDA, TensorRT EP) runs our scheduler.
ORT_ENGINE = "runtime.llm.engines:onnxruntime_engine"
ENGINES: dict[EngineKind, str] = {EngineKind.TENSORRT_LLM: "runtime.llm.trtllm_engine:tensorrt_llm_engine"}


class JobEngine(Protocol):
    vocab: Vocab
    # Capabilities, declared by each engine class: structured outputs run only where the engine masks logits
    # with our grammar before sampling; prefix-cache counters exist only where our slot table keeps them.
    supports_grammar: ClassVar[bool]

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def submit(self, job: Job) -> None: ...

    def use_grammar(self, grammar: GrammarEngine) -> None:
        """Mask constrained rows with this grammar (called only when supports_grammar)."""

    def prefix_cache_stats(self) -> PrefixStats | None: ...


def make_vocab(tokenizer: ChatTokenizer, vocab_size: int) -> Vocab:
    """The model may have more logit rows than the tokenizer has tokens (padding rows): they decode to nothing."""
    table = tokenizer.token_bytes + [b""] * max(0, vocab_size - len(tokenizer.token_bytes))
    return Vocab(table, tokenizer.special_ids, tokenizer.stop_ids)


def build_engine(model_dir: Path, config: GeneratorConfig, tokenizer: ChatTokenizer,
                 session: EngineSession | None = None, target: EngineTarget = EngineTarget(),
                 device_id: int = 0) -> JobEngine:
    module, _, function = ENGINES.get(target.engine, ORT_ENGINE).partition(":")
    return getattr(importlib.import_module(module), function)(Path(model_dir), config, tokenizer, session, target,
                                                             device_id)


def engine_session(path: Path, config: GeneratorConfig, target: EngineTarget, device_id: int = 0) -> EngineSession:
    """One engine class for every device: KV buffers per slot on the CPU, or on the GPU with the CUDA provider."""
    if not target.on_gpu:
        from runtime.llm.slot_session import SlotSession  # noqa: PLC0415  (only this engine needs onnxruntime)

        return SlotSession(path, config.max_batch_size, config.max_model_len, config.intra_op_threads,
                           spinning=config.intra_op_spinning)
    from runtime.llm.slot_session import CudaSlotSession  # noqa: PLC0415

    return CudaSlotSession(path, config.max_batch_size, config.max_model_len, target, device_id)


def onnxruntime_engine(model_dir: Path, config: GeneratorConfig, tokenizer: ChatTokenizer,
                       session: EngineSession | None = None, target: EngineTarget = EngineTarget(),
                       device_id: int = 0) -> JobEngine:
    """Our continuous-batching scheduler over an ONNX Runtime session (or the session a caller passes)."""
    from runtime.llm.scheduler import Scheduler  # noqa: PLC0415

    session = session or engine_session(model_dir / config.engine, config, target, device_id)
    return Scheduler(session, make_vocab(tokenizer, session.vocab_size), config.max_batch_size,
                     interval=config.stream_interval, prefix_caching=config.prefix_caching)
