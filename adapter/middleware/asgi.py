"""Tiny ASGI helpers shared by the middleware."""
from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from adapter.errors import OpenAIError


async def send_error(err: OpenAIError, scope: Scope, receive: Receive, send: Send) -> None:
    await JSONResponse(err.body(), status_code=err.status, headers=err.headers)(scope, receive, send)


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None
