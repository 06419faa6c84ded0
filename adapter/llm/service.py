"""Request -> checks against the model -> generation on Triton -> JSON response or SSE stream."""
from __future__ import annotations

from typing import Any

from fastapi import Response

from adapter import request_context
from adapter.llm.generation import Generation
from adapter.llm.limits import ModelLimits
from adapter.llm.protocol import ChatCompletionRequest, CompletionRequest
from adapter.llm.responses import ResponseMeta, chat_response, completion_response
from adapter.llm.sse import SSEResponse, StreamUsage, chat_chunks, completion_chunks
from adapter.model_registry import ModelRegistry, ServedModel
from adapter.triton_client import TritonClient
from runtime.contract import Task


def _json(model: Any) -> Response:
    return Response(model.model_dump_json(), media_type="application/json")


async def _served(registry: ModelRegistry, model_id: str) -> tuple[ServedModel, ModelLimits]:
    model = await registry.resolve(model_id, Task.TEXT_GENERATION)
    return model, ModelLimits.of(model)


def _trace_id(meta: ResponseMeta) -> str:
    """Triton's request id: the HTTP request id (x-request-id, in the access log) when there is one."""
    return request_context.current_request_id() or meta.id


def _stream_usage(body: ChatCompletionRequest | CompletionRequest) -> StreamUsage:
    return StreamUsage(include=body.include_usage, continuous=body.continuous_usage)


async def create_chat_completion(body: ChatCompletionRequest, triton: TritonClient,
                                 registry: ModelRegistry) -> Response:
    model, limits = await _served(registry, body.model)
    payload = body.triton_payload()
    limits.check_sampling(payload["sampling"], body.max_tokens_param)
    meta = ResponseMeta.new("chatcmpl", model.id)
    generation = Generation(triton, model.id, [payload], payload["sampling"]["n"], _trace_id(meta))
    await generation.start()  # caller errors (prompt too long, ...) become a 400 before any byte is sent
    if body.stream:
        return SSEResponse(chat_chunks(generation, meta, _stream_usage(body), body.parses_tool_calls),
                           generation.close)
    return _json(await chat_response(generation, meta, bool(body.logprobs), body.parses_tool_calls))


async def create_completion(body: CompletionRequest, triton: TritonClient, registry: ModelRegistry) -> Response:
    model, limits = await _served(registry, body.model)
    payloads = body.triton_payloads()
    limits.check_sampling(payloads[0]["sampling"], "max_tokens")
    for payload in payloads:
        limits.check_token_ids(payload.get("prompt_token_ids", []), "prompt")
    meta = ResponseMeta.new("cmpl", model.id)
    generation = Generation(triton, model.id, payloads, payloads[0]["sampling"]["n"], _trace_id(meta),
                            echo=bool(body.echo))
    await generation.start()
    if body.stream:
        return SSEResponse(completion_chunks(generation, meta, _stream_usage(body)), generation.close)
    return _json(await completion_response(generation, meta, body.logprobs is not None))
