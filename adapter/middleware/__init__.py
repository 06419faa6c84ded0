"""Cross-cutting HTTP layers (pure ASGI, so streaming responses pass through untouched).

Outermost first: access (request id, JSON access log, request metrics) -> auth (API keys) -> guard (body size,
limits, per-model backpressure, cancel on client disconnect) -> the routers.
"""
from __future__ import annotations

import logging

from fastapi import FastAPI

from adapter.middleware.access import AccessMiddleware
from adapter.middleware.auth import ApiKeyChecker, AuthMiddleware
from adapter.middleware.backpressure import InFlightLimiter
from adapter.middleware.guard import GuardMiddleware
from adapter.middleware.limits import Limits
from adapter.settings import Settings

log = logging.getLogger("adapter.auth")


def install_hardening(app: FastAPI, settings: Settings) -> None:
    # Starlette runs the last added middleware first.
    limiter = InFlightLimiter(settings.max_in_flight_per_model, settings.queue_timeout_s, settings.retry_after_s)
    app.add_middleware(GuardMiddleware, limits=Limits.from_settings(settings), limiter=limiter)
    checker = ApiKeyChecker(settings.load_api_keys())
    if not checker.enabled:
        log.warning("no API keys configured (API_KEYS / API_KEYS_FILE): the API is open to every caller")
    app.add_middleware(AuthMiddleware, checker=checker, exempt=settings.exempt_paths())
    app.add_middleware(AccessMiddleware, enabled=settings.access_log)
