"""GET /v1/models and /v1/models/{id}."""
from fastapi import APIRouter, Depends

from adapter.deps import get_registry
from adapter.model_registry import ModelRegistry

router = APIRouter(prefix="/v1")


@router.get("/models")
async def list_models(registry: ModelRegistry = Depends(get_registry)) -> dict:
    return {"object": "list", "data": [m.card() for m in await registry.list()]}


@router.get("/models/{model_id:path}")
async def retrieve_model(model_id: str, registry: ModelRegistry = Depends(get_registry)) -> dict:
    return (await registry.get(model_id)).card()
