"""Adapter settings, parsed once from environment variables (prefix-free names, e.g. TRITON_GRPC_URL)."""
from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    triton_grpc_url: str = "127.0.0.1:8001"
    # Seconds for one unary Triton call; image generation on CPU is the slowest.
    triton_timeout_s: float = 600.0
    # How long the served-model list is trusted before Triton's repository index is read again.
    model_cache_ttl_s: float = 5.0
    log_level: str = "info"


@lru_cache
def get_settings() -> Settings:
    return Settings()
