"""Per-request facts gathered along the way (id, model, token counts) for the access log and metrics.

The access middleware opens a RequestContext in a context variable; code below it (middleware, routers,
the metrics recorders) fills it in. Tasks started for a request (e.g. a streaming body) copy the context
variable, and they all share the one mutable RequestContext.
"""
from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass, field


@dataclass
class RequestContext:
    request_id: str
    method: str
    path: str
    started: float = field(default_factory=time.perf_counter)
    model: str | None = None  # as requested (for the log)
    model_label: str = ""  # the model when it is served, else "" (metric labels stay a bounded set)
    stream: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    client_gone: bool = False  # the client left before the response was complete


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar("request_context", default=None)


def current() -> RequestContext | None:
    return _current.get()


def current_request_id() -> str:
    """The request id (echoed as x-request-id); routers may pass it to Triton as the request id."""
    ctx = _current.get()
    return ctx.request_id if ctx else ""


def open_context(ctx: RequestContext) -> contextvars.Token:
    return _current.set(ctx)


def close_context(token: contextvars.Token) -> None:
    _current.reset(token)


def add_tokens(prompt: int, generated: int) -> None:
    ctx = _current.get()
    if ctx is not None:
        ctx.prompt_tokens += prompt
        ctx.completion_tokens += generated
