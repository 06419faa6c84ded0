"""Which engine runs an LLM entry's jobs, chosen by the entry's `engine_type` parameter (no `if engine ==`).

An engine takes jobs (runtime/llm/sequence.py: prompt, sampling parameters, response sink) and streams their
responses; it has start(), stop(), submit(job) and the Vocab its jobs decode with. Each builder names its module
lazily, so the ONNX Runtime path never imports TensorRT-LLM and the other way round.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Protocol

from runtime.llm.protocol import GeneratorConfig
from runtime.llm.sequence import Job, Vocab
from runtime.llm.session import EngineSession
from runtime.llm.tokenizer import LlamaTokenizer

# engine_type -> "module:function(model_dir, config, tokenizer, session) -> JobEngine"
ENGINES: dict[str, str] = {
    "onnxruntime": "runtime.llm.engines:onnxruntime_engine",
    "tensorrt-llm": "runtime.llm.trtllm_engine:tensorrt_llm_engine",
}


class JobEngine(Protocol):
    vocab: Vocab

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def submit(self, job: Job) -> None: ...


def make_vocab(tokenizer: LlamaTokenizer, vocab_size: int) -> Vocab:
    """The model may have more logit rows than the tokenizer has tokens (padding rows): they decode to nothing."""
    table = tokenizer.token_bytes + [b""] * max(0, vocab_size - len(tokenizer.token_bytes))
    return Vocab(table, tokenizer.special_ids, tokenizer.stop_ids)


def build_engine(model_dir: Path, config: GeneratorConfig, tokenizer: LlamaTokenizer,
                 session: EngineSession | None = None) -> JobEngine:
    target = ENGINES.get(config.engine_type)
    if target is None:
        raise ValueError(f"unknown engine_type {config.engine_type!r}; known: {', '.join(sorted(ENGINES))}")
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)(Path(model_dir), config, tokenizer, session)


def onnxruntime_engine(model_dir: Path, config: GeneratorConfig, tokenizer: LlamaTokenizer,
                       session: EngineSession | None = None) -> JobEngine:
    """Our continuous-batching scheduler over an ONNX Runtime session (or the session a caller passes)."""
    from runtime.llm.ort_session import OrtSession  # noqa: PLC0415  (only this engine needs onnxruntime)
    from runtime.llm.scheduler import Scheduler  # noqa: PLC0415

    session = session or OrtSession(model_dir / config.engine, config.intra_op_threads)
    return Scheduler(session, make_vocab(tokenizer, session.vocab_size), config.max_batch_size)
