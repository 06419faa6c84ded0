"""POST /v1/completions (adapter/llm: protocol and service; legacy text completions, JSON or SSE)."""
from fastapi import APIRouter, Request, Response

from adapter.llm.protocol import CompletionRequest
from adapter.llm.service import create_completion
from adapter.paths import COMPLETIONS
from adapter.routers.json_body_route import JSONBodyRoute

router = APIRouter(route_class=JSONBodyRoute)


@router.post(COMPLETIONS)
async def completions(body: CompletionRequest, request: Request) -> Response:
    state = request.app.state
    return await create_completion(body, state.triton, state.registry)
