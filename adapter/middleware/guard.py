"""Guard in front of the routers: body size, request limits, per-model backpressure, cancel on disconnect.

The body is read here once (bounded), inspected, and replayed to the router. While the router runs, this layer
owns the client connection: when the client goes away before the response is complete, the router's task is
cancelled, which cancels its Triton call (unary or stream) instead of computing an answer nobody reads.
"""
from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapter import metrics, request_context
from adapter.errors import OpenAIError
from adapter.middleware.asgi import header, send_error
from adapter.middleware.backpressure import InFlightLimiter
from adapter.middleware.limits import Limits, body_too_large, check_limits
from adapter.request_context import RequestContext


class ClientGone(Exception):
    """The client disconnected while we were still reading its request."""


async def read_body(scope: Scope, receive: Receive, max_bytes: int) -> bytes:
    declared = header(scope, b"content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise body_too_large(max_bytes)
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise body_too_large(max_bytes)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    """The JSON body, or None when it is not JSON (the router then answers with its own 400)."""
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def requested_model(body: Any) -> str | None:
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else None


async def served_model(scope: Scope, model: str | None) -> str | None:
    """`model` when Triton serves it (cached list): only those get slots and metric labels (bounded sets)."""
    if model is None:
        return None
    try:
        served = await scope["app"].state.registry.find(model)
    except Exception:  # noqa: BLE001  (Triton unreachable: the router answers 503 itself)
        return None
    return model if served is not None else None


async def run_cancelling_on_disconnect(app: ASGIApp, scope: Scope, body: bytes, receive: Receive,
                                       send: Send) -> bool:
    """Run the app with the buffered body; returns True when the client left before the response completed."""
    gone = asyncio.Event()
    complete = False
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def tracked_send(message: Message) -> None:
        nonlocal complete
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            complete = True
        await send(message)

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()

    app_task = asyncio.ensure_future(app(scope, replay, tracked_send))
    watcher = asyncio.ensure_future(watch())
    try:
        await asyncio.wait({app_task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        left = gone.is_set() and not complete
        if left and not app_task.done():
            app_task.cancel()  # cancels the router's Triton call
        await asyncio.wait({app_task})  # raises CancelledError only when this task itself is cancelled
        if not app_task.cancelled():
            app_task.result()  # the router's own exceptions propagate as before
        return left
    finally:
        watcher.cancel()
        if not app_task.done():  # we were cancelled ourselves (e.g. shutdown deadline)
            app_task.cancel()


class GuardMiddleware:
    def __init__(self, app: ASGIApp, limits: Limits, limiter: InFlightLimiter):
        self.app, self.limits, self.limiter = app, limits, limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        try:
            body = await read_body(scope, receive, self.limits.max_body_bytes)
        except ClientGone:
            return
        except OpenAIError as err:
            return await send_error(err, scope, receive, send)
        parsed = parse_json(body) if scope["method"] == "POST" else None
        err = check_limits(scope["path"], parsed, self.limits)
        if err is not None:
            return await send_error(err, scope, receive, send)
        requested = requested_model(parsed)
        model = await served_model(scope, requested)
        ctx = request_context.current()
        if ctx is not None:
            ctx.model = requested[:128] if requested else None
            ctx.model_label = model or ""
            ctx.stream = isinstance(parsed, dict) and parsed.get("stream") is True
        if model is None:
            return await self._run(scope, body, receive, send, ctx)
        try:
            await self.limiter.acquire(model)
        except OpenAIError as err:
            metrics.record_rejected(model, "in_flight_limit")
            return await send_error(err, scope, receive, send)
        metrics.requests_in_flight.labels(model).inc()
        try:
            await self._run(scope, body, receive, send, ctx)
        finally:
            metrics.requests_in_flight.labels(model).dec()
            self.limiter.release(model)

    async def _run(self, scope: Scope, body: bytes, receive: Receive, send: Send,
                   ctx: RequestContext | None) -> None:
        left = await run_cancelling_on_disconnect(self.app, scope, body, receive, send)
        if left and ctx is not None:
            ctx.client_gone = True
