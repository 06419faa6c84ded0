"""Liveness (process up) and readiness (Triton reachable and its models ready)."""
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from adapter.deps import get_triton
from adapter.triton_client import TritonClient

router = APIRouter()


@router.get("/health")
async def health() -> dict:
    return {"status": "ok"}


@router.get("/health/ready")
async def ready(triton: TritonClient = Depends(get_triton)) -> JSONResponse:
    if await triton.is_ready():
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "unavailable", "triton": triton.url}, status_code=503)
