"""One generation: a generator request on Triton per prompt, merged into one stream of steps.

Each Triton response (see the contract in runtime/llm/protocol.py) becomes a `Step`: text deltas of some
choices (indices made global: prompt p, choice i -> p * n + i) and the usage so far over all prompts. Steps
that arrive together are merged into one (each choice's deltas joined), so a client that falls behind the
engine gets one chunk for them, not one per step.
`start()` waits for every prompt's first response, so caller errors (prompt too long, ...) surface before
an HTTP response has begun; `close()` (also when the client goes away) cancels the Triton requests.
"""
from __future__ import annotations

import asyncio
import time
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, AsyncIterator

import numpy as np
import orjson

from adapter import metrics
from adapter.errors import internal_error
from adapter.triton_client import Tensors, TritonClient
from runtime.llm.protocol import GenerationRequest

REQUEST_INPUT = "request"
RESPONSE_OUTPUT = "response"
_DONE = object()


@dataclass
class ChoiceDelta:
    index: int
    text: str
    finish_reason: str | None = None
    logprobs: list[dict[str, Any]] | None = None  # the contract's logprobs.content entries of these tokens


@dataclass
class Step:
    choices: list[ChoiceDelta]
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0  # of the prompt tokens, those the engine's prefix cache held


def merge_steps(steps: list[Step]) -> Step:
    """Several steps as one: per choice (in index order) the texts and logprobs joined, the last finish_reason;
    the usage of the last."""
    if len(steps) == 1:
        return steps[0]
    merged: dict[int, ChoiceDelta] = {}
    for d in (d for step in steps for d in step.choices):
        m = merged.get(d.index)
        if m is None:
            merged[d.index] = ChoiceDelta(d.index, d.text, d.finish_reason, d.logprobs and list(d.logprobs))
            continue
        m.text += d.text
        m.finish_reason = d.finish_reason or m.finish_reason
        if d.logprobs:
            m.logprobs = (m.logprobs or []) + d.logprobs
    last = steps[-1]
    return Step([merged[i] for i in sorted(merged)], last.prompt_tokens, last.completion_tokens, last.cached_tokens)


def request_tensors(request: GenerationRequest) -> Tensors:
    return {REQUEST_INPUT: np.array([request.to_json().encode()], dtype=np.object_)}


def parse_response(tensors: Tensors) -> dict[str, Any]:
    return orjson.loads(tensors[RESPONSE_OUTPUT].reshape(-1)[0])


class Generation:
    """Reader tasks (one per prompt) put Triton responses on a queue as they arrive; `steps()` hands over
    everything that has arrived since the last call as one merged step, so a busy event loop sends one SSE
    chunk for several tokens instead of one each (streaming keeps up with non-streaming under load)."""

    def __init__(self, triton: TritonClient, model: str, requests: list[GenerationRequest], request_id: str):
        """requests: one per prompt, all with the same sampling (n choices each) and echo."""
        self.model, self.n, self.echo = model, requests[0].sampling.n, requests[0].echo
        self.num_choices = len(requests) * self.n
        self._triton, self._requests, self._request_id = triton, requests, request_id
        self._queue: asyncio.Queue = asyncio.Queue()
        self._readers: list[asyncio.Task] = []
        self._running = len(requests)
        self._closed = False
        self._first: list[tuple[int, Any, BaseException | None]] = []
        self._usage = [(0, 0, 0)] * len(requests)  # (prompt, completion, cached) tokens per prompt, cumulative
        self._prompt_text: dict[int, str] = {}
        self._started_choices: set[int] = set()
        self._finished: set[int] = set()
        self._t0 = time.perf_counter()
        self._last_token_at: float | None = None
        self._timed_tokens = 0
        self._ttft, self._itl = metrics.token_timers(model)

    @property
    def prompt_tokens(self) -> int:
        return sum(u[0] for u in self._usage)

    @property
    def completion_tokens(self) -> int:
        return sum(u[1] for u in self._usage)

    @property
    def cached_tokens(self) -> int:
        return sum(u[2] for u in self._usage)

    def echoed(self, index: int) -> str:
        """The prompt text put before choice `index` (echo), "" without echo."""
        return self._prompt_text.get(index // self.n, "") if self.echo else ""

    async def start(self) -> None:
        """Send every prompt and wait for its first response; errors raise here (OpenAIError)."""
        self._readers = [asyncio.create_task(self._read(p, request)) for p, request in enumerate(self._requests)]
        waiting = set(range(len(self._requests)))
        try:
            while waiting:
                item = await self._queue.get()
                if item[2] is not None:
                    raise item[2]
                self._first.append(item)
                waiting.discard(item[0])
        except BaseException:
            self.close()
            raise

    async def steps(self) -> AsyncIterator[Step]:
        """What has arrived since the last step, merged into one, as soon as there is something."""
        try:
            arrived, self._first = self._first, []
            while self._running:
                if not arrived:
                    arrived.append(await self._queue.get())
                while not self._queue.empty():
                    arrived.append(self._queue.get_nowait())
                steps = [s for s in (self._take(item) for item in arrived) if s is not None]
                arrived = []
                if steps:
                    step = merge_steps(steps)
                    self._record_timing(step)
                    yield step
            if len(self._finished) < self.num_choices:
                raise internal_error(f"The generator ended {self.num_choices - len(self._finished)} choice(s) "
                                     "without a finish_reason.")
        finally:
            self.close()

    def close(self) -> None:
        """Cancel what is still running on Triton (idempotent, never waits: safe while being cancelled)."""
        if self._closed:
            return
        self._closed = True
        for reader in self._readers:
            reader.cancel()
        metrics.record_tokens(self.model, self.prompt_tokens, self.completion_tokens)

    async def _read(self, p: int, request: GenerationRequest) -> None:
        stream = self._triton.stream(self.model, request_tensors(request), request_id=f"{self._request_id}-{p}")
        try:
            async with aclosing(stream) as responses:  # closing cancels the Triton request
                async for tensors in responses:
                    self._queue.put_nowait((p, tensors, None))
            self._queue.put_nowait((p, _DONE, None))
        except Exception as exc:  # noqa: BLE001  (handed to the consumer, which raises it)
            self._queue.put_nowait((p, None, exc))

    def _take(self, item: tuple[int, Any, BaseException | None]) -> Step | None:
        p, tensors, exc = item
        if exc is not None:
            raise exc
        if tensors is _DONE:
            self._running -= 1
            return None
        return self._step(p, parse_response(tensors))

    def _step(self, p: int, response: dict[str, Any]) -> Step:
        if "prompt_text" in response:
            self._prompt_text[p] = response["prompt_text"]
        usage = response.get("usage")
        if usage:
            self._usage[p] = (usage["prompt_tokens"], usage["completion_tokens"], usage.get("cached_tokens", 0))
        choices = [self._delta(p, c) for c in response.get("choices", ())]
        return Step(choices, self.prompt_tokens, self.completion_tokens, self.cached_tokens)

    def _delta(self, p: int, choice: dict[str, Any]) -> ChoiceDelta:
        index = p * self.n + choice["index"]
        text = choice.get("text") or ""
        if index not in self._started_choices:
            self._started_choices.add(index)
            text = self.echoed(index) + text
        if choice.get("finish_reason"):
            self._finished.add(index)
        logprobs = choice.get("logprobs")
        return ChoiceDelta(index, text, choice.get("finish_reason"), logprobs["content"] if logprobs else None)

    def _record_timing(self, step: Step) -> None:
        """TTFT once; then a step with k new tokens per choice counts as k inter-token gaps of 1/k of its wait
        (as if its tokens had come evenly), so coalesced responses keep the metric's meaning."""
        tokens = step.completion_tokens - self._timed_tokens
        if tokens <= 0 or not any(c.text or c.logprobs for c in step.choices):
            return
        self._timed_tokens = step.completion_tokens
        now = time.perf_counter()
        k = max(1, round(tokens / self.num_choices))
        if self._last_token_at is None:
            self._ttft.observe(now - self._t0)
            gap, k = 0.0, k - 1  # tokens that came with the first one
        else:
            gap = (now - self._last_token_at) / k
        for _ in range(k):
            self._itl.observe(gap)
        self._last_token_at = now
