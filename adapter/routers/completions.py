"""POST /v1/completions (legacy text completions; JSON or SSE with `stream: true`)."""
from fastapi import APIRouter, Depends, Response

from adapter.deps import get_registry, get_triton
from adapter.llm.protocol import CompletionRequest
from adapter.llm.service import create_completion
from adapter.model_registry import ModelRegistry
from adapter.triton_client import TritonClient

router = APIRouter(prefix="/v1")


@router.post("/completions")
async def completions(body: CompletionRequest, triton: TritonClient = Depends(get_triton),
                      registry: ModelRegistry = Depends(get_registry)) -> Response:
    return await create_completion(body, triton, registry)
