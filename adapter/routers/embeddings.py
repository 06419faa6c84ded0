"""POST /v1/embeddings (adapter/embeddings: protocol and service)."""
from fastapi import APIRouter, Request, Response

from adapter.embeddings.protocol import EmbeddingRequest
from adapter.embeddings.service import create_embeddings
from adapter.paths import EMBEDDINGS
from adapter.routers.json_body_route import JSONBodyRoute

router = APIRouter(route_class=JSONBodyRoute)


@router.post(EMBEDDINGS)
async def embeddings(body: EmbeddingRequest, request: Request) -> Response:
    state = request.app.state
    return await create_embeddings(body, state.triton, state.registry)
