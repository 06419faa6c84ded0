"""GET /v1/models and /v1/models/{id} (adapter/models: protocol and service)."""
from fastapi import APIRouter, Request, Response

from adapter.models.service import list_models, retrieve_model
from adapter.paths import MODEL, MODELS

router = APIRouter()


@router.get(MODELS)
async def models(request: Request) -> Response:
    return await list_models(request.app.state.registry)


@router.get(MODEL)
async def model(model_id: str, request: Request) -> Response:
    return await retrieve_model(model_id, request.app.state.registry)
