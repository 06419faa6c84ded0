"""Request -> the generator's contract, checked against the model -> generation on Triton -> JSON or SSE."""
from __future__ import annotations

from typing import Any

from fastapi import Response

from adapter import request_context
from adapter.errors import OpenAIError
from adapter.llm.generation import Generation
from adapter.llm.protocol import ChatCompletionRequest, CompletionRequest
from adapter.llm.responses import ResponseMeta, chat_response, completion_response
from adapter.llm.sse import SSEResponse, StreamUsage, chat_chunks, completion_chunks
from adapter.model_registry import ModelRegistry, ServedModel
from adapter.triton_client import TritonClient
from runtime.contract import Task
from runtime.errors import ClientError
from runtime.llm.protocol import GenerationRequest, GeneratorConfig


def _json(model: Any) -> Response:
    return Response(model.model_dump_json(), media_type="application/json")


async def _generation(body: ChatCompletionRequest | CompletionRequest, triton: TritonClient,
                      registry: ModelRegistry, prefix: str) -> tuple[Generation, ResponseMeta, ServedModel]:
    """The body as generator requests, validated against the served model (the rules the generator applies to
    direct Triton callers: a 400 here, before Triton), started: caller errors (prompt too long, ...) surface
    before any byte is sent."""
    model = await registry.resolve(body.model, Task.TEXT_GENERATION)
    requests = _checked(body, GeneratorConfig.from_parameters(model.parameters))
    meta = ResponseMeta.new(prefix, model.id)
    generation = Generation(triton, model.id, requests, _trace_id(meta))
    try:
        await generation.start()
    except OpenAIError as exc:  # the generator's checks after tokenization (prompt + max_tokens > the context)
        exc.param = body.param_as_sent(exc.param)
        raise
    return generation, meta, model


def _checked(body: ChatCompletionRequest | CompletionRequest, config: GeneratorConfig) -> list[GenerationRequest]:
    try:
        requests = ([body.to_generation_request()] if isinstance(body, ChatCompletionRequest)
                    else body.to_generation_requests())
        for request in requests:
            request.validate(config)
    except ClientError as exc:
        raise body.client_error(exc) from exc
    return requests


def _trace_id(meta: ResponseMeta) -> str:
    """Triton's request id: the HTTP request id (x-request-id, in the access log) when there is one."""
    return request_context.current_request_id() or meta.id


def _stream_usage(body: ChatCompletionRequest | CompletionRequest) -> StreamUsage:
    return StreamUsage(include=body.include_usage, continuous=body.continuous_usage)


async def create_chat_completion(body: ChatCompletionRequest, triton: TritonClient,
                                 registry: ModelRegistry) -> Response:
    generation, meta, model = await _generation(body, triton, registry, "chatcmpl")
    tool_family = model.family if body.parses_tool_calls else None  # its parsers read the calls back
    if body.stream:
        return SSEResponse(chat_chunks(generation, meta, _stream_usage(body), tool_family), generation.close)
    return _json(await chat_response(generation, meta, bool(body.logprobs), tool_family))


async def create_completion(body: CompletionRequest, triton: TritonClient, registry: ModelRegistry) -> Response:
    generation, meta, _ = await _generation(body, triton, registry, "cmpl")
    if body.stream:
        return SSEResponse(completion_chunks(generation, meta, _stream_usage(body)), generation.close)
    return _json(await completion_response(generation, meta, body.logprobs is not None))
