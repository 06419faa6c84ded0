"""Bounded in-flight requests per model: beyond the bound a request waits up to a timeout, then gets a 429.

Slots of a model exist only while it has requests, so arbitrary model names cannot grow memory.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

from adapter.errors import OpenAIError


def overloaded(model: str, limit: int, retry_after_s: int) -> OpenAIError:
    return OpenAIError(429, f"Too many requests in flight for model `{model}`: this server's limit is {limit} "
                            f"(max_in_flight_per_model). Retry after {retry_after_s} s.",
                       "rate_limit_error", None, "rate_limit_exceeded", headers={"Retry-After": str(retry_after_s)})


@dataclass
class _Slots:
    semaphore: asyncio.Semaphore
    users: int = 0  # holders + waiters
    running: int = 0


class InFlightLimiter:
    def __init__(self, limit: int, queue_timeout_s: float = 0.0, retry_after_s: int = 1):
        self.limit, self.queue_timeout_s, self.retry_after_s = limit, queue_timeout_s, retry_after_s
        self._models: dict[str, _Slots] = {}

    def running(self, model: str) -> int:
        slots = self._models.get(model)
        return slots.running if slots else 0

    async def acquire(self, model: str) -> None:
        """Take one of `model`'s slots; raises the 429 OpenAIError when none frees in time."""
        if self.limit <= 0:
            return
        slots = self._models.get(model)
        if slots is None:
            slots = self._models[model] = _Slots(asyncio.Semaphore(self.limit))
        slots.users += 1
        try:
            await self._wait(slots, model)
        except BaseException:
            self._leave(model, slots)
            raise
        slots.running += 1

    def release(self, model: str) -> None:
        if self.limit <= 0:
            return
        slots = self._models[model]
        slots.running -= 1
        slots.semaphore.release()
        self._leave(model, slots)

    def _leave(self, model: str, slots: _Slots) -> None:
        slots.users -= 1
        if slots.users == 0:
            del self._models[model]

    async def _wait(self, slots: _Slots, model: str) -> None:
        if not slots.semaphore.locked():  # a free slot is taken without suspending: no timer to arm
            await slots.semaphore.acquire()
            return
        if self.queue_timeout_s <= 0:
            raise overloaded(model, self.limit, self.retry_after_s)
        try:
            # asyncio.timeout keeps the acquire in this task, so a late wake-up is never lost (unlike wait_for).
            async with asyncio.timeout(self.queue_timeout_s or None):
                await slots.semaphore.acquire()
        except TimeoutError:
            raise overloaded(model, self.limit, self.retry_after_s) from None
