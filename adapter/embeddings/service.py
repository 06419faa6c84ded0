"""Request -> checks against the model -> one Triton call to its ensemble -> float or base64 vectors."""
from __future__ import annotations

import orjson
from fastapi import Response

from adapter.embeddings.protocol import (EmbeddingModelInfo, EmbeddingRequest, check_against_model,
                                         embedding_response, parse_input, shorten, triton_inputs)
from adapter.metrics import record_tokens
from adapter.model_registry import ModelRegistry
from adapter.triton_client import TritonClient
from runtime.contract import Task

OUTPUTS = ["EMBEDDINGS", "TOKEN_COUNTS"]


async def create_embeddings(body: EmbeddingRequest, triton: TritonClient, registry: ModelRegistry) -> Response:
    model = await registry.resolve(body.model, Task.EMBEDDINGS)
    inputs = parse_input(body.input)
    info = EmbeddingModelInfo.from_parameters(model.parameters)
    check_against_model(inputs, body.dimensions, info)
    out = await triton.infer(model.id, triton_inputs(inputs, body.truncate), OUTPUTS)
    vectors = shorten(out["EMBEDDINGS"], body.dimensions, info.normalized)
    record_tokens(model.id, int(out["TOKEN_COUNTS"].sum()))
    payload = embedding_response(vectors, out["TOKEN_COUNTS"], model.id, body.encoding_format)
    return Response(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")
