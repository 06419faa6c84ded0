"""API-key auth: `Authorization: Bearer <key>` checked in constant time; keys are never logged or echoed."""
from __future__ import annotations

import hashlib
import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from adapter.errors import OpenAIError
from adapter.middleware.asgi import header, send_error

_MISSING = ("You didn't provide an API key. You need to provide your API key in an Authorization header using "
            "Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
_WRONG = "Incorrect API key provided."


def _digest(key: str) -> bytes:
    # Equal-length digests: compare_digest then takes the same time whatever the presented key's length.
    return hashlib.sha256(key.encode()).digest()


def unauthorized(message: str) -> OpenAIError:
    return OpenAIError(401, message, "invalid_request_error", None, "invalid_api_key",
                       headers={"WWW-Authenticate": "Bearer"})


class ApiKeyChecker:
    def __init__(self, keys: frozenset[str]):
        self._digests = [_digest(k) for k in keys]

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def check(self, authorization: str | None) -> OpenAIError | None:
        """None when the Authorization header carries a configured key, else the 401 to send."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return unauthorized(_MISSING)
        presented = _digest(token)
        match = False
        for digest in self._digests:  # no early exit: time does not reveal which key matched
            match |= hmac.compare_digest(presented, digest)
        return None if match else unauthorized(_WRONG)


def is_exempt(path: str, exempt: tuple[str, ...]) -> bool:
    """Exact path or a prefix of whole segments; "/" (no segment) exempts the root page only."""
    return any(path == p or (p.rstrip("/") and path.startswith(p.rstrip("/") + "/")) for p in exempt)


class AuthMiddleware:
    def __init__(self, app: ASGIApp, checker: ApiKeyChecker, exempt: tuple[str, ...]):
        self.app, self.checker, self.exempt = app, checker, exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.checker.enabled and not is_exempt(scope["path"], self.exempt):
            err = self.checker.check(header(scope, b"authorization"))
            if err is not None:
                return await send_error(err, scope, receive, send)
        await self.app(scope, receive, send)
