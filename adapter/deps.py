"""FastAPI dependencies: the shared Triton client and model registry live on app.state.

They are `async def` on purpose: FastAPI runs a plain `def` dependency in its thread pool, two thread hops per
request on the hot path.
"""
from fastapi import Request

from adapter.model_registry import ModelRegistry
from adapter.settings import Settings
from adapter.triton_client import TritonClient


async def get_triton(request: Request) -> TritonClient:
    return request.app.state.triton


async def get_registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings
