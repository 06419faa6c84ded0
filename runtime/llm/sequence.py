"""One request (a Job) and its n choices: token bookkeeping, finish reasons, text deltas and logprobs."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Protocol

from runtime.llm.coalesce import StreamPace
from runtime.llm.detokenizer import IncrementalDetokenizer
from runtime.llm.min_tokens import with_min_tokens
from runtime.llm.grammar import Constraint
from runtime.llm.protocol import SamplingParams, response_json
from runtime.llm.sampler import Sampled, Sampler
from runtime.llm.slot_table import Claim
from runtime.llm.stop import StopMatcher
from runtime.llm.tokenizer import Prompt

_MIN_LOGPROB = -9999.0  # a banned token has logprob -inf, which JSON cannot carry


class ResponseSink(Protocol):
    """Where a job's responses go (the Triton response sender in production, a list in tests)."""

    def send(self, payload: str, final: bool) -> None: ...

    def fail(self, error: BaseException) -> None: ...

    def cancelled(self) -> bool: ...

    def close(self) -> None:
        """End the stream of a job dropped without a final response (the client went away)."""


@dataclass(frozen=True)
class Vocab:
    """What sequences need from the tokenizer."""
    token_bytes: list[bytes]
    special_ids: frozenset[int]
    stop_ids: frozenset[int]

    def token_entry(self, token_id: int, logprob: float) -> dict:
        raw = self.token_bytes[token_id]
        return {"token": raw.decode("utf-8", errors="replace"), "logprob": max(logprob, _MIN_LOGPROB),
                "bytes": list(raw)}


@dataclass
class Choice:
    index: int
    sampler: Sampler
    detok: IncrementalDetokenizer
    stop: StopMatcher
    max_tokens: int
    min_tokens: int = 0                # no EOS and no stop string before this many tokens
    constraint: Constraint | None = None  # the grammar this choice's tokens must follow (structured output)
    slot: int = -1
    token_ids: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    text: str = ""                     # not yet sent
    logprobs: list[dict] = field(default_factory=list)  # not yet sent
    reported: bool = False             # finish_reason sent

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def accept(self, sampled: Sampled, vocab: Vocab, ignore_eos: bool) -> None:
        token = sampled.token_id
        self.token_ids.append(token)
        if sampled.logprob is not None:
            entry = vocab.token_entry(token, sampled.logprob)
            entry["top_logprobs"] = [vocab.token_entry(t, lp) for t, lp in (sampled.top or [])]
            self.logprobs.append(entry)
        if self.constraint is not None:  # a finished document ends the choice, ignore_eos or not
            self.constraint.accept(token)
            ignore_eos = False
        early = len(self.token_ids) < self.min_tokens  # vLLM: stop checks start at the min_tokens-th token
        if token in vocab.stop_ids and not ignore_eos and not early:
            self._finish("stop")
            return
        delta = self.detok.add(token)
        emitted, matched = (delta, False) if early else self.stop.feed(delta)
        self.text += emitted
        if matched:
            self.finish_reason = "stop"
        elif len(self.token_ids) >= self.max_tokens:
            self._finish("length")

    def end(self, reason: str) -> None:
        """Finish for a reason the engine decided (an engine that stops sequences itself, e.g. TensorRT-LLM)."""
        if not self.finished:
            self._finish(reason)

    def _finish(self, reason: str) -> None:
        tail, matched = self.stop.feed(self.detok.flush())
        self.text += tail if matched else tail + self.stop.flush()
        self.finish_reason = "stop" if matched else reason

    def delta(self, with_logprobs: bool) -> dict | None:
        """This choice's part of the next response, or None when it has nothing new."""
        ends = self.finished and not self.reported
        if not self.text and not self.logprobs and not ends:
            return None
        out = {"index": self.index, "text": self.text, "finish_reason": self.finish_reason if ends else None,
               "logprobs": {"content": self.logprobs} if with_logprobs else None}
        self.text, self.logprobs, self.reported = "", [], self.reported or ends
        return out


class Job:
    """A client request: one prompt, n choices sampled from it, one response stream."""

    def __init__(self, prompt: Prompt, params: SamplingParams, vocab: Vocab, sink: ResponseSink,
                 max_model_len: int, echo: bool = False, stream: bool = True,
                 constraints: Callable[[], Constraint] | None = None):
        self.prompt, self.params, self.sink, self.echo = prompt, params, sink, echo
        self.pace = StreamPace(stream)
        room = max_model_len - len(prompt.token_ids)
        limit = min(params.max_tokens, room) if params.max_tokens is not None else room
        self.choices = [Choice(i, with_min_tokens(Sampler(params, len(vocab.token_bytes), i), params.min_tokens,
                                                  frozenset() if params.ignore_eos else vocab.stop_ids),
                               IncrementalDetokenizer(vocab.token_bytes, vocab.special_ids),
                               StopMatcher(params.stop), max_tokens=limit, min_tokens=params.min_tokens,
                               constraint=constraints() if constraints else None) for i in range(params.n)]
        self._echo_sent = False
        self.claim: Claim | None = None  # its KV slot and reused prefix, once admitted (runtime/llm/slot_table.py)
        self.submitted_at = 0.0  # monotonic time the scheduler queued it
        self.started = threading.Event()  # set once its first step has been emitted, or it has left

    @property
    def done(self) -> bool:
        return all(c.finished for c in self.choices)

    @property
    def completion_tokens(self) -> int:
        return sum(len(c.token_ids) for c in self.choices)

    def flush(self, now: float = 0.0) -> None:
        """Send what the choices produced since the last response (final flag once every choice has ended)."""
        deltas = [d for d in (c.delta(self.params.logprobs) for c in self.choices) if d is not None]
        final = self.done
        if not deltas and not final:
            return
        prompt_text = None
        if self.echo and not self._echo_sent:
            prompt_text, self._echo_sent = self.prompt.text, True
        tokens = self.completion_tokens
        cached = self.claim.reused if self.claim else 0
        self.sink.send(response_json(deltas, len(self.prompt.token_ids), tokens, prompt_text, cached), final)
        self.pace.sent(now, tokens)
