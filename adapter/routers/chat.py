"""POST /v1/chat/completions (JSON or SSE with `stream: true`)."""
from fastapi import APIRouter, Depends, Response

from adapter.deps import get_registry, get_triton
from adapter.llm.protocol import ChatCompletionRequest
from adapter.llm.service import create_chat_completion
from adapter.model_registry import ModelRegistry
from adapter.triton_client import TritonClient

router = APIRouter(prefix="/v1")


@router.post("/chat/completions")
async def chat_completions(body: ChatCompletionRequest, triton: TritonClient = Depends(get_triton),
                           registry: ModelRegistry = Depends(get_registry)) -> Response:
    return await create_chat_completion(body, triton, registry)
