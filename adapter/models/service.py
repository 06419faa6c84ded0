"""The registry's served models as OpenAI model objects (404 model_not_found for an unknown id)."""
from __future__ import annotations

from fastapi import Response
from fastapi.responses import JSONResponse

from adapter.model_registry import ModelRegistry
from adapter.models.protocol import model_card, model_list


async def list_models(registry: ModelRegistry) -> Response:
    return JSONResponse(model_list(await registry.list()))


async def retrieve_model(model_id: str, registry: ModelRegistry) -> Response:
    return JSONResponse(model_card(await registry.get(model_id)))
