"""Request limits checked before a request reaches a router: pure functions over the parsed JSON body.

Only values of the right type are checked here; wrong types are left to the routers' validation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapter.errors import OpenAIError, invalid_request
from adapter.paths import CHAT_COMPLETIONS, COMPLETIONS, EMBEDDINGS, IMAGES_GENERATIONS
from adapter.settings import Settings


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int
    max_n: int
    max_tokens: int
    max_embedding_inputs: int
    max_images: int

    @classmethod
    def from_settings(cls, s: Settings) -> "Limits":
        return cls(s.max_body_bytes, s.max_n, s.max_tokens_limit, s.max_embedding_inputs, s.max_images)


def body_too_large(limit: int) -> OpenAIError:
    return OpenAIError(413, f"Request body too large: the limit is {limit} bytes (max_body_bytes).",
                       "invalid_request_error", None, "request_too_large")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _over(value: Any, limit: int) -> bool:
    return limit > 0 and _is_int(value) and value > limit


def _limit_error(param: str, value: int, limit: int, name: str) -> OpenAIError:
    return invalid_request(f"Invalid '{param}': {value} is above this server's limit of {limit} ({name}).",
                           param, "limit_exceeded")


def count_embedding_inputs(value: Any) -> int:
    """A string or a flat list of token ids is one input; otherwise one per list item."""
    if isinstance(value, list) and value and not all(_is_int(v) for v in value):
        return len(value)
    return 1


def check_limits(path: str, body: Any, limits: Limits) -> OpenAIError | None:
    if not isinstance(body, dict):
        return None
    if path in (CHAT_COMPLETIONS, COMPLETIONS):
        if _over(body.get("n"), limits.max_n):
            return _limit_error("n", body["n"], limits.max_n, "max_n")
        for param in ("max_tokens", "max_completion_tokens"):
            if _over(body.get(param), limits.max_tokens):
                return _limit_error(param, body[param], limits.max_tokens, "max_tokens_limit")
    elif path == EMBEDDINGS and "input" in body:
        count = count_embedding_inputs(body["input"])
        if _over(count, limits.max_embedding_inputs):
            return _limit_error("input", count, limits.max_embedding_inputs, "max_embedding_inputs")
    elif path == IMAGES_GENERATIONS and _over(body.get("n"), limits.max_images):
        return _limit_error("n", body["n"], limits.max_images, "max_images")
    return None
