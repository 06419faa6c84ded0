"""A FastAPI route for the token-streaming endpoints that serves a JSON request without FastAPI's per-request
machinery.

Declared, documented (OpenAPI) and matched like any FastAPI route, but `handle` parses and validates the body
itself and awaits the endpoint: no dependency solving, no request/response wrappers. At the floor of a chat
request (Triton answering at once) that machinery is a large share of the adapter's own CPU, and on the time to
first token every microsecond of it counts twice (it runs on caches the engine has just flushed);
bench/adapter_cpu.py measures this route class against FastAPI's own on the same endpoints.

The endpoint is `async def f(body: Model, request: Request) -> Response`. A request with a JSON body (any
application/json or +json content type) is parsed with the stdlib parser and validated in Python mode as FastAPI
does, and its errors are raised as the RequestValidationError FastAPI would raise (the app's handlers format
them). Anything else (another method, another content type) goes through FastAPI unchanged.
"""
from __future__ import annotations

import json
import typing
from email.message import Message
from functools import lru_cache

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.types import Receive, Scope, Send

from adapter.middleware.asgi import header


@lru_cache(maxsize=64)
def is_json(content_type: str) -> bool:
    """FastAPI's rule: application/json or application/*+json, parameters allowed."""
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


def validation_error(exc: ValidationError) -> RequestValidationError:
    """pydantic's errors located as FastAPI locates a body's (under "body")."""
    return RequestValidationError([{**err, "loc": ("body", *err["loc"])} for err in exc.errors()])


def json_decode_error(exc: json.JSONDecodeError) -> RequestValidationError:
    return RequestValidationError([{"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error",
                                    "input": {}, "ctx": {"error": exc.msg}}], body=exc.doc)


class JSONBodyRoute(APIRoute):
    def __init__(self, path: str, endpoint: typing.Callable, **kwargs: typing.Any):
        super().__init__(path, endpoint, **kwargs)
        hints = typing.get_type_hints(endpoint)
        params = [p for p in hints if p != "return"]
        if params != ["body", "request"] or not issubclass(hints["body"], BaseModel) or hints["request"] is not Request:
            raise TypeError(f"{path}: a JSONBodyRoute endpoint is `async def f(body: Model, request: Request)`")
        self.body_model: type[BaseModel] = hints["body"]

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        content_type = header(scope, b"content-type")
        if scope["method"] not in self.methods or not content_type or not is_json(content_type):
            return await super().handle(scope, receive, send)
        request = Request(scope, receive, send)
        raw = await request.body()
        if not raw:
            raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
        try:
            parsed = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise json_decode_error(exc) from exc
        except ValueError as exc:  # not UTF-8/16/32 text at all
            raise HTTPException(400, "There was an error parsing the body") from exc
        try:
            body = self.body_model.model_validate(parsed, from_attributes=True)  # as FastAPI validates a body
        except ValidationError as exc:
            raise validation_error(exc) from None
        response = await self.endpoint(body, request)
        await response(scope, receive, send)
