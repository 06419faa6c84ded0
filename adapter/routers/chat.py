"""POST /v1/chat/completions (adapter/llm: protocol and service; JSON or SSE with `stream: true`)."""
from fastapi import APIRouter, Request, Response

from adapter.llm.protocol import ChatCompletionRequest
from adapter.llm.service import create_chat_completion
from adapter.paths import CHAT_COMPLETIONS
from adapter.routers.json_body_route import JSONBodyRoute

router = APIRouter(route_class=JSONBodyRoute)


@router.post(CHAT_COMPLETIONS)
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
    state = request.app.state
    return await create_chat_completion(body, state.triton, state.registry)
