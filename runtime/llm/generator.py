"""The generator as the Triton model sees it: tokenizer + the entry's engine (runtime/llm/engines.py), built
from a model folder."""
from __future__ import annotations

from pathlib import Path

from runtime.errors import ClientError
from runtime.llm.engines import build_engine
from runtime.llm.families import DEFAULT_FAMILY
from runtime.llm.families.base import ModelFamily
from runtime.llm.grammar import GrammarEngine, Guide
from runtime.llm.protocol import GenerationRequest, GeneratorConfig
from runtime.llm.sequence import Job, ResponseSink
from runtime.llm.session import EngineSession
from runtime.llm.slot_table import PrefixStats
from runtime.llm.tokenizer import ChatTokenizer
from runtime.target import EngineTarget


class Generator:
    def __init__(self, model_dir: str | Path, config: GeneratorConfig, session: EngineSession | None = None,
                 target: EngineTarget = EngineTarget(), device_id: int = 0, family: ModelFamily = DEFAULT_FAMILY):
        self.config = config
        self.tokenizer = ChatTokenizer(Path(model_dir) / "tokenizer", family)
        # Our Scheduler over an ORT session, or TensorRT-LLM's own in-flight batcher: both take Jobs.
        self.scheduler = build_engine(Path(model_dir), config, self.tokenizer, session, target, device_id)
        self.vocab = self.scheduler.vocab
        # Structured outputs where the engine can mask logits; make_job refuses guided requests elsewhere.
        self.grammar = None
        if self.scheduler.supports_grammar:
            self.grammar = GrammarEngine(self.vocab.token_bytes, self.vocab.special_ids, self.vocab.stop_ids,
                                         tool_calls=family.tool_calls)
            self.scheduler.use_grammar(self.grammar)

    def start(self) -> None:
        self.scheduler.start()

    def prefix_cache_stats(self) -> PrefixStats | None:
        """Prefix reuse counters of our scheduler (None for an engine that keeps its own, e.g. TensorRT-LLM)."""
        return self.scheduler.prefix_cache_stats()

    def stop(self, timeout: float = 10.0) -> None:
        """End every generation (its client gets an error) and the loop; safe to call again."""
        self.scheduler.stop(timeout)

    def make_job(self, request_json: str, sink: ResponseSink) -> Job:
        """Parse, template, tokenize and check one request; raises ClientError for the caller's mistakes."""
        request = GenerationRequest.from_json(request_json)
        request.validate(self.config)
        prompt = self.tokenizer.prompt(request, self.config.max_model_len)
        guide = Guide.from_json(request.guide)
        constraints = None
        if guide is not None:  # compiled here, in Triton's thread: a bad schema is a 400 before any token
            if self.grammar is None:
                raise ClientError("response_format / tool_choice constraints are not served by this model's engine",
                                  "response_format")
            compiled = self.grammar.compile(guide)
            constraints = lambda: self.grammar.constraint(compiled)  # noqa: E731
        return Job(prompt, request.sampling, self.vocab, sink, self.config.max_model_len, request.echo,
                   request.stream, constraints)

    def submit(self, request_json: str, sink: ResponseSink, wait_first_s: float = 0.0) -> Job:
        """Parse and queue a request. With `wait_first_s`, a job that finds the engine idle is waited for until
        its first step is out (at most that long): Triton's Python-backend stub holds the GIL while it hands
        execute()'s return to the server (pb_stub.cc, ProcessRequests), so returning at once would stall the
        engine thread's prefill behind that round trip, 1-3 ms of time to first token on a quiet server. A busy
        engine is not waited for: the job joins at the next step either way."""
        job = self.make_job(request_json, sink)
        if self.scheduler.submit(job) and wait_first_s > 0:
            job.started.wait(wait_first_s)
        return job
