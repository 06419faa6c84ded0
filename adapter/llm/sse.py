"""Server-sent events for `stream: true`: OpenAI chunks, an error event if generation fails, `data: [DONE]`."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import AsyncIterator, Callable

import orjson
from pydantic import BaseModel
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from adapter.errors import OpenAIError, internal_error
from adapter.llm.generation import ChoiceDelta, Generation, Step
from adapter.llm.protocol import (ChatChunkChoice, ChatCompletionChunk, ChatDelta, CompletionChoice,
                                  CompletionLogprobs, CompletionResponse, ToolCallDelta, Usage)
from adapter.llm.responses import ResponseMeta, chat_logprobs, legacy_logprobs, usage_of
from adapter.llm.tool_calls import ToolCallStream

log = logging.getLogger("adapter.llm.sse")

DONE = b"data: [DONE]\n\n"


class SSEResponse(StreamingResponse):
    """Closes its events (and calls on_close) however streaming ends, so a vanished client cancels the
    Triton request."""

    def __init__(self, events: AsyncIterator[bytes], on_close: Callable[[], None] = lambda: None):
        super().__init__(events, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()  # even when the events never started (client gone before the first byte)
            await self.body_iterator.aclose()  # type: ignore[union-attr]


@dataclass(frozen=True)
class StreamUsage:
    """stream_options: include_usage -> a last chunk with usage; continuous -> usage on every chunk too."""
    include: bool = False
    continuous: bool = False


def event(data: BaseModel | dict, exclude: set[str] | None = None) -> bytes:
    body = data.model_dump_json(exclude=exclude).encode() if isinstance(data, BaseModel) else orjson.dumps(data)
    return b"data: " + body + b"\n\n"


async def _with_end(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Generation errors after the response began become an error event; [DONE] ends every stream."""
    try:
        async for chunk in chunks:
            yield chunk
    except OpenAIError as exc:
        yield event(exc.body())
    except Exception:  # noqa: BLE001  (a bug must still end the stream in a way clients understand)
        log.exception("streaming failed")
        yield event(internal_error("Streaming failed.").body())
    yield DONE


class _Usage:
    """Usage of one stream: absent unless asked for; on every chunk (continuous) and/or in a last chunk."""

    def __init__(self, generation: Generation, options: StreamUsage):
        self.generation, self.options = generation, options
        self.exclude = None if options.include else {"usage"}

    def now(self, step: Step | Generation | None = None) -> Usage | None:
        counts = step or self.generation
        return usage_of(counts.prompt_tokens, counts.completion_tokens) if self.options.continuous else None

    def final(self) -> list[Usage]:
        g = self.generation
        return [usage_of(g.prompt_tokens, g.completion_tokens)] if self.options.include else []


class _ToolDeltas:
    """With tools offered, each choice's text goes through a ToolCallStream: content, or tool-call deltas."""

    def __init__(self, num_choices: int):
        self.streams = [ToolCallStream() for _ in range(num_choices)]

    def split(self, d: ChoiceDelta) -> tuple[ChatDelta | None, str | None]:
        """This step's delta of choice d (None: nothing to send) and its finish_reason."""
        stream = self.streams[d.index]
        content, calls = stream.feed(d.text)
        finish_reason = d.finish_reason
        if finish_reason:
            tail, _, finish_reason = stream.finish(finish_reason)
            content += tail
        tool_calls = [ToolCallDelta(index=c.index, id=c.id, name=c.name, arguments=c.arguments) for c in calls]
        if not (content or tool_calls or d.logprobs):
            return None, finish_reason
        return ChatDelta(content=content if content or not tool_calls else None,
                         tool_calls=tool_calls or None), finish_reason


def chat_chunks(generation: Generation, meta: ResponseMeta, options: StreamUsage,
                tools: bool = False) -> AsyncIterator[bytes]:
    """Role first, then content (or tool-call) deltas, then each choice's finish_reason in a chunk of its own."""
    usage = _Usage(generation, options)
    tool_deltas = _ToolDeltas(generation.num_choices) if tools else None

    def split(d: ChoiceDelta) -> tuple[ChatDelta | None, str | None]:
        if tool_deltas is not None:
            return tool_deltas.split(d)
        return (ChatDelta(content=d.text) if d.text or d.logprobs else None), d.finish_reason

    def chunk(choices: list[ChatChunkChoice], step_usage: Usage | None = None) -> bytes:
        return event(ChatCompletionChunk(id=meta.id, created=meta.created, model=meta.model, choices=choices,
                                         usage=step_usage), usage.exclude)

    def step_chunks(step: Step) -> list[bytes]:
        step_usage = usage.now(step)
        parts = [(d, *split(d)) for d in step.choices]
        content = [ChatChunkChoice(index=d.index, delta=delta, logprobs=chat_logprobs(d.logprobs))
                   for d, delta, _ in parts if delta is not None]
        finished = [ChatChunkChoice(index=d.index, delta=ChatDelta(), finish_reason=reason)
                    for d, _, reason in parts if reason]
        return [chunk(choices, step_usage) for choices in (content, finished) if choices]

    def role_chunk(first: Step) -> bytes:  # sent with the first tokens; its usage counts only the prompt
        role_usage = usage_of(first.prompt_tokens, 0) if options.continuous else None
        return chunk([ChatChunkChoice(index=i, delta=ChatDelta(role="assistant", content=""))
                      for i in range(generation.num_choices)], role_usage)

    async def chunks() -> AsyncIterator[bytes]:
        first = True
        async for steps in generation.batches():
            head = [role_chunk(steps[0])] if first else []
            first = False
            yield b"".join(head + [c for step in steps for c in step_chunks(step)])
        for total in usage.final():
            yield chunk([], total)

    return _with_end(chunks())


def completion_chunks(generation: Generation, meta: ResponseMeta, options: StreamUsage) -> AsyncIterator[bytes]:
    """One chunk per generator response (text and finish_reason together, as the legacy API did)."""
    usage = _Usage(generation, options)
    next_offset: dict[int, int] = {}  # per choice: text offset of its next token (legacy logprobs)

    def logprobs(index: int, entries: list[dict] | None) -> CompletionLogprobs | None:
        if entries is None:
            return None
        start = next_offset.get(index, len(generation.echoed(index)))
        lp = legacy_logprobs(entries, start)
        next_offset[index] = start + sum(len(t) for t in lp.tokens)
        return lp

    def chunk(choices: list[CompletionChoice], step_usage: Usage | None = None) -> bytes:
        return event(CompletionResponse(id=meta.id, created=meta.created, model=meta.model, choices=choices,
                                        usage=step_usage), usage.exclude)

    def step_chunk(step: Step) -> bytes:
        choices = [CompletionChoice(index=d.index, text=d.text, finish_reason=d.finish_reason,
                                    logprobs=logprobs(d.index, d.logprobs)) for d in step.choices]
        return chunk(choices, usage.now(step)) if choices else b""

    async def chunks() -> AsyncIterator[bytes]:
        async for steps in generation.batches():
            data = b"".join(step_chunk(step) for step in steps)
            if data:
                yield data
        for total in usage.final():
            yield chunk([], total)

    return _with_end(chunks())
