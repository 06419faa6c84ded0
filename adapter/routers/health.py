"""Liveness (process up) and readiness (Triton reachable and its models ready)."""
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from adapter.paths import HEALTH, HEALTH_READY

router = APIRouter()


@router.get(HEALTH)
async def health() -> dict:
    return {"status": "ok"}


@router.get(HEALTH_READY)
async def ready(request: Request) -> JSONResponse:
    triton = request.app.state.triton
    if await triton.is_ready():
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "unavailable", "triton": triton.url}, status_code=503)
