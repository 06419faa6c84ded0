"""Liveness (process up) and readiness (Triton reachable and its models ready)."""
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter()


@router.get("/health")
async def health() -> dict:
    return {"status": "ok"}


@router.get("/health/ready")
async def ready(request: Request) -> JSONResponse:
    triton = request.app.state.triton
    if await triton.is_ready():
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "unavailable", "triton": triton.url}, status_code=503)
