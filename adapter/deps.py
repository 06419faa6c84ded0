"""FastAPI dependencies: the shared Triton client and model registry live on app.state."""
from fastapi import Request

from adapter.model_registry import ModelRegistry
from adapter.settings import Settings
from adapter.triton_client import TritonClient


def get_triton(request: Request) -> TritonClient:
    return request.app.state.triton


def get_registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


def get_settings(request: Request) -> Settings:
    return request.app.state.settings
