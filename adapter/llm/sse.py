"""Server-sent events for `stream: true`: OpenAI chunks, an error event if generation fails, `data: [DONE]`."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import AsyncIterator, Callable

import orjson
from starlette.requests import ClientDisconnect
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from adapter.errors import OpenAIError, internal_error
from adapter.llm.generation import ChoiceDelta, Generation, Step
from adapter.llm.protocol import ChatDelta, ToolCallDelta, Usage
from adapter.llm.responses import ResponseMeta, legacy_logprobs, usage_of
from adapter.llm.tool_calls import ToolCallStream
from runtime.llm.families.base import ModelFamily

log = logging.getLogger("adapter.llm.sse")

DONE = b"data: [DONE]\n\n"


class SSEResponse(StreamingResponse):
    """Closes its events (and calls on_close) however streaming ends, so a vanished client cancels the
    Triton request. Streams without Starlette's disconnect-listener task: the guard middleware owns the
    connection and cancels this response when the client leaves (adapter/middleware/guard.py), so that task
    (a task group per stream, about 1 ms of the time to first token on a busy core) would only duplicate it."""

    def __init__(self, events: AsyncIterator[bytes], on_close: Callable[[], None] = lambda: None):
        super().__init__(events, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.stream_response(send)
        except OSError as exc:  # ASGI 2.4 servers fail `send` when the client is gone (as Starlette maps it)
            raise ClientDisconnect() from exc
        finally:
            self._on_close()  # even when the events never started (client gone before the first byte)
            await self.body_iterator.aclose()  # type: ignore[union-attr]


@dataclass(frozen=True)
class StreamUsage:
    """stream_options: include_usage -> a last chunk with usage; continuous -> usage on every chunk too."""
    include: bool = False
    continuous: bool = False


# Characters JSON may leave raw but line readers take for line breaks (httpx's aiter_lines, and so httpx-sse,
# splits text as str.splitlines does): escaped, so that a generated token cannot cut an event in two. In UTF-8
# these byte sequences only ever encode those characters.
_LINE_BREAKS = ((b"\xc2\x85", b"\\u0085"), (b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"))


def json_line(value) -> bytes:
    """`value` as JSON for an event's data: no raw U+0085 / U+2028 / U+2029 (the same JSON value, escaped)."""
    data = orjson.dumps(value)
    for raw, escaped in _LINE_BREAKS:
        if raw in data:
            data = data.replace(raw, escaped)
    return data


def event(data: dict) -> bytes:
    return b"data: " + json_line(data) + b"\n\n"


class Frames:
    """Preformatted SSE frames of one stream: the envelope (id, object, created, model) is encoded once and
    each chunk is its choices (plain dicts in the OpenAI chunk shape) through orjson, no pydantic per chunk.
    With include_usage every chunk has a usage key (null until the last, or the running count)."""

    def __init__(self, meta: ResponseMeta, obj: str, options: StreamUsage):
        envelope = orjson.dumps({"id": meta.id, "object": obj, "created": meta.created, "model": meta.model})
        self.head = b"data: " + envelope[:-1] + b',"choices":'
        self.with_usage = options.include

    def frame(self, choices: list[dict], usage: Usage | None = None) -> bytes:
        if not self.with_usage:
            return self.head + json_line(choices) + b"}\n\n"
        counts = None if usage is None else usage.model_dump()
        return self.head + json_line(choices) + b',"usage":' + orjson.dumps(counts) + b"}\n\n"


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

    def now(self, step: Step | Generation | None = None) -> Usage | None:
        counts = step or self.generation
        return usage_of(counts) if self.options.continuous else None

    def final(self) -> list[Usage]:
        g = self.generation
        return [usage_of(g)] if self.options.include else []


class _ToolDeltas:
    """With tools offered, each choice's text goes through the model family's ToolCallStream: content, or
    tool-call deltas."""

    def __init__(self, num_choices: int, family: ModelFamily):
        self.streams = [ToolCallStream(family) for _ in range(num_choices)]

    def split(self, d: ChoiceDelta) -> tuple[dict | None, str | None]:
        """This step's delta of choice d in the chunk shape (None: nothing to send) and its finish_reason."""
        stream = self.streams[d.index]
        content, calls = stream.feed(d.text)
        finish_reason = d.finish_reason
        if finish_reason:  # a parser may hold calls until the end (one that reads the whole text does)
            tail, last_calls, finish_reason = stream.finish(finish_reason)
            content, calls = content + tail, calls + last_calls
        tool_calls = [ToolCallDelta(index=c.index, id=c.id, name=c.name, arguments=c.arguments) for c in calls]
        if not (content or tool_calls or d.logprobs):
            return None, finish_reason
        return ChatDelta(content=content if content or not tool_calls else None,
                         tool_calls=tool_calls or None).model_dump(), finish_reason


def chat_chunks(generation: Generation, meta: ResponseMeta, options: StreamUsage,
                tool_family: ModelFamily | None = None) -> AsyncIterator[bytes]:
    """Role first, then content (or tool-call) deltas, then each choice's finish_reason in a chunk of its own.
    tool_family: the served model's family when tools were offered (its streaming parser reads each choice)."""
    usage = _Usage(generation, options)
    frames = Frames(meta, "chat.completion.chunk", options)
    tool_deltas = _ToolDeltas(generation.num_choices, tool_family) if tool_family else None

    def split(d: ChoiceDelta) -> tuple[dict | None, str | None]:
        if tool_deltas is not None:
            return tool_deltas.split(d)
        return ({"content": d.text} if d.text or d.logprobs else None), d.finish_reason

    def step_chunks(step: Step) -> bytes:
        step_usage = usage.now(step)
        parts = [(d, *split(d)) for d in step.choices]
        content = [{"index": d.index, "delta": delta,
                    "logprobs": None if d.logprobs is None else {"content": d.logprobs, "refusal": None},
                    "finish_reason": None} for d, delta, _ in parts if delta is not None]
        finished = [{"index": d.index, "delta": {}, "logprobs": None, "finish_reason": reason}
                    for d, _, reason in parts if reason]
        return b"".join(frames.frame(choices, step_usage) for choices in (content, finished) if choices)

    def role_chunk(first: Step) -> bytes:  # sent with the first tokens; its usage counts only the prompt
        role_usage = usage_of(first, completion_tokens=0) if options.continuous else None
        return frames.frame([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                              "finish_reason": None} for i in range(generation.num_choices)], role_usage)

    async def chunks() -> AsyncIterator[bytes]:
        first = True
        async for step in generation.steps():
            head = role_chunk(step) if first else b""
            first = False
            yield head + step_chunks(step)
        for total in usage.final():
            yield frames.frame([], total)

    return _with_end(chunks())


def completion_chunks(generation: Generation, meta: ResponseMeta, options: StreamUsage) -> AsyncIterator[bytes]:
    """One chunk per step (text and finish_reason together, as the legacy API did)."""
    usage = _Usage(generation, options)
    frames = Frames(meta, "text_completion", options)
    next_offset: dict[int, int] = {}  # per choice: text offset of its next token (legacy logprobs)

    def logprobs(index: int, entries: list[dict] | None) -> dict | None:
        if entries is None:
            return None
        start = next_offset.get(index, len(generation.echoed(index)))
        lp = legacy_logprobs(entries, start)
        next_offset[index] = start + sum(len(t) for t in lp.tokens)
        return lp.model_dump()

    async def chunks() -> AsyncIterator[bytes]:
        async for step in generation.steps():
            if step.choices:
                yield frames.frame([{"index": d.index, "text": d.text, "logprobs": logprobs(d.index, d.logprobs),
                                     "finish_reason": d.finish_reason} for d in step.choices], usage.now(step))
        for total in usage.final():
            yield frames.frame([], total)

    return _with_end(chunks())
