"""App factory: settings, one shared Triton client, the model registry, routers and error handlers."""
from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from adapter.errors import install_error_handlers
from adapter.model_registry import ModelRegistry
from adapter.middleware import install_hardening
from adapter.routers import chat, completions, embeddings, health, images, metrics, models, playground
from adapter.settings import Settings, get_settings
from adapter.triton_client import TritonClient

ROUTERS = [health.router, models.router, metrics.router, chat.router, completions.router,
           images.router, embeddings.router, playground.router]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.triton = TritonClient(settings.triton_grpc_url, settings.triton_timeout_s)
        app.state.registry = ModelRegistry(app.state.triton, settings.model_cache_ttl_s)
        yield
        await app.state.triton.close()

    app = FastAPI(title="triton-openai", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    install_error_handlers(app)
    install_hardening(app, settings)
    for router in ROUTERS:
        app.include_router(router)
    return app
