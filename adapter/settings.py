"""Adapter settings, parsed once from environment variables (prefix-free names, e.g. TRITON_GRPC_URL).

Hardening settings (each an environment variable of the same name in upper case):

Auth
- API_KEYS: comma-separated accepted API keys (`Authorization: Bearer <key>`).
- API_KEYS_FILE: a file with one key per line (blank lines and `#` comments ignored); adds to API_KEYS.
  No key configured = the API is open (a warning is logged at start-up).
- AUTH_EXEMPT_PATHS: comma-separated path prefixes that never need a key (default `/health,/metrics,/playground,/`;
  `/` matches the root page only, never every path).

Limits (each violation is a 4xx OpenAI error envelope naming the limit; 0 disables a count limit)
- MAX_BODY_BYTES: largest request body accepted (413 beyond it).
- MAX_N: largest `n` for chat/completions.
- MAX_TOKENS_LIMIT: largest `max_tokens` / `max_completion_tokens`.
- MAX_EMBEDDING_INPUTS: most inputs in one embeddings request.
- MAX_IMAGES: largest `n` for image generation.

Backpressure
- MAX_IN_FLIGHT_PER_MODEL: requests one model may have in flight in this adapter (0 = unbounded);
  beyond it, 429 with Retry-After.
- QUEUE_TIMEOUT_S: how long a request waits for a free slot before the 429 (0 = reject at once).
- RETRY_AFTER_S: the Retry-After value sent with a 429.

Serving
- ADAPTER_WORKERS: adapter processes sharing the port (each with its own event loop and gRPC channel); the
  limits above (MAX_IN_FLIGHT_PER_MODEL) hold per worker.

Observability and lifecycle
- ACCESS_LOG: one JSON line per request on the `adapter.access` logger (no prompt text).
- SHUTDOWN_TIMEOUT_S: on SIGTERM, how long in-flight requests (streams included) may run before they are cut
  (20 s: inside Kubernetes' 30 s grace period, with room for tritonserver's own stop after it).
- KEEP_ALIVE_TIMEOUT_S: how long an idle client connection stays open. Longer than clients' own pool expiry
  (httpx, so the openai SDK: 5 s), so a client never reuses a connection the server is just closing.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from adapter.paths import HEALTH, METRICS, PLAYGROUND, ROOT
from runtime.embeddings.tokenization import MAX_INPUTS
from runtime.llm.protocol import MAX_N
from runtime.sdxl.config import MAX_IMAGES



class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore")

    triton_grpc_url: str = "127.0.0.1:8001"
    # Seconds for one unary Triton call; image generation on CPU is the slowest.
    triton_timeout_s: float = 600.0
    # How long the served-model list is trusted before Triton's repository index is read again.
    model_cache_ttl_s: float = 5.0
    log_level: str = "info"

    # Auth (kept as strings: pydantic-settings would otherwise expect JSON lists in the environment).
    api_keys: str = ""
    api_keys_file: Path | None = None
    auth_exempt_paths: str = ",".join((HEALTH, METRICS, PLAYGROUND, ROOT))  # ROOT ("/") alone: only the page

    # Limits.
    max_body_bytes: int = 16 * 1024 * 1024
    max_n: int = MAX_N
    max_tokens_limit: int = 32768
    max_embedding_inputs: int = MAX_INPUTS  # (the server's own limits: at most the contracts')
    max_images: int = MAX_IMAGES

    # Backpressure.
    max_in_flight_per_model: int = 256
    queue_timeout_s: float = 0.0
    retry_after_s: int = 1

    adapter_workers: int = 1

    access_log: bool = True
    shutdown_timeout_s: float = 20.0
    keep_alive_timeout_s: float = 65.0

    def load_api_keys(self) -> frozenset[str]:
        """Keys from API_KEYS and API_KEYS_FILE; never logged."""
        keys = [k.strip() for k in self.api_keys.split(",")]
        if self.api_keys_file is not None:
            lines = self.api_keys_file.read_text().splitlines()
            keys += [line.strip() for line in lines if not line.lstrip().startswith("#")]
        return frozenset(k for k in keys if k)

    def exempt_paths(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.auth_exempt_paths.split(",") if p.strip())


@lru_cache
def get_settings() -> Settings:
    return Settings()
