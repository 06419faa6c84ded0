"""The generator as the Triton model sees it: tokenizer + engine session + scheduler, built from a model folder."""
from __future__ import annotations

from pathlib import Path

from runtime.errors import ClientError
from runtime.llm.grammar import GrammarEngine, Guide
from runtime.llm.ort_session import OrtSession
from runtime.llm.protocol import GenerationRequest, GeneratorConfig
from runtime.llm.scheduler import Scheduler
from runtime.llm.sequence import Job, ResponseSink, Vocab
from runtime.llm.session import EngineSession
from runtime.llm.tokenizer import LlamaTokenizer


class Generator:
    def __init__(self, model_dir: str | Path, config: GeneratorConfig, session: EngineSession | None = None):
        self.config = config
        self.tokenizer = LlamaTokenizer(Path(model_dir) / "tokenizer")
        self.session = session or OrtSession(Path(model_dir) / config.engine, config.intra_op_threads)
        # The model may have more logit rows than the tokenizer has tokens (padding rows): they decode to nothing.
        table = self.tokenizer.token_bytes + [b""] * max(0, self.session.vocab_size - len(self.tokenizer.token_bytes))
        self.vocab = Vocab(table, self.tokenizer.special_ids, self.tokenizer.stop_ids)
        self.grammar = GrammarEngine(table, self.vocab.special_ids, self.vocab.stop_ids)
        self.scheduler = Scheduler(self.session, self.vocab, config.max_batch_size, grammar=self.grammar)

    def start(self) -> None:
        self.scheduler.start()

    def stop(self) -> None:
        self.scheduler.stop()

    def make_job(self, request_json: str, sink: ResponseSink) -> Job:
        """Parse, template, tokenize and check one request; raises ClientError for the caller's mistakes."""
        request = GenerationRequest.from_json(request_json, self.config.vocab_size)
        if request.sampling.n > self.config.max_batch_size:
            raise ClientError(f"n={request.sampling.n} is more than this model decodes at once "
                              f"({self.config.max_batch_size})", "n")
        prompt = self.tokenizer.prompt(request, self.config.max_model_len)
        guide = Guide.from_json(request.guide)
        constraints = None
        if guide is not None:  # compiled here, in Triton's thread: a bad schema is a 400 before any token
            compiled = self.grammar.compile(guide)
            constraints = lambda: self.grammar.constraint(compiled)  # noqa: E731
        return Job(prompt, request.sampling, self.vocab, sink, self.config.max_model_len, request.echo,
                   constraints)

    def submit(self, request_json: str, sink: ResponseSink) -> Job:
        job = self.make_job(request_json, sink)
        self.scheduler.submit(job)
        return job
