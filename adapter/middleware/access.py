"""Request id, one JSON access-log line per request, request count and latency metrics.

The id is the client's `x-request-id` when it is a sane token, else a fresh one; it is echoed in the response
header and kept in `request.state.request_id`. The log line has no prompt text and no headers (no API keys).
"""
from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from datetime import datetime, timezone

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapter import metrics, request_context
from adapter.middleware.asgi import header
from adapter.request_context import RequestContext

log = logging.getLogger("adapter.access")
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
CLIENT_CLOSED = 499  # nginx's status for "client closed the request"


def request_id(client_value: str | None) -> str:
    if client_value and _CLIENT_ID.fullmatch(client_value):
        return client_value
    return f"req-{uuid.uuid4().hex}"


def route_label(scope: Scope) -> str:
    """The matched route template (bounded label set), not the raw path."""
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


def log_record(ctx: RequestContext, route: str, status: int, seconds: float) -> dict:
    return {"ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "event": "request",
            "request_id": ctx.request_id, "method": ctx.method, "path": ctx.path, "route": route,
            "model": ctx.model, "status": status, "latency_ms": round(seconds * 1000, 1), "stream": ctx.stream,
            "prompt_tokens": ctx.prompt_tokens, "completion_tokens": ctx.completion_tokens}


def configure_access_logger() -> None:
    """Bare JSON lines on stderr, apart from the human-oriented log format of the rest of the adapter."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


class AccessMiddleware:
    def __init__(self, app: ASGIApp, enabled: bool = True):
        self.app, self.enabled = app, enabled
        if enabled:
            configure_access_logger()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        ctx = RequestContext(request_id(header(scope, b"x-request-id")), scope["method"], scope["path"])
        scope.setdefault("state", {})["request_id"] = ctx.request_id
        status, finished = 500, None

        async def tagged_send(message: Message) -> None:
            nonlocal status, finished
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", ctx.request_id.encode())]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = time.perf_counter()
            await send(message)

        token = request_context.open_context(ctx)
        try:
            await self.app(scope, receive, tagged_send)
        finally:
            request_context.close_context(token)
            seconds = (finished or time.perf_counter()) - ctx.started
            final = CLIENT_CLOSED if ctx.client_gone else status
            metrics.record_request(route_label(scope), ctx.model_label, final, seconds)
            if self.enabled:
                log.info(json.dumps(log_record(ctx, route_label(scope), final, seconds)))
