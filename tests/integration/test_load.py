"""Bounded loopback load: 200 concurrent streaming chats for LOAD_SECONDS (default 30).

Zero errors, every stream closed by [DONE] with a finish_reason, and the adapter's memory back near where it
was after a warm-up round (so no per-request growth).
"""
from __future__ import annotations

import asyncio
import json
import os
import time

import httpx
import pytest

from tests.integration.hardening_support import CHAT_MODEL, metric_value, rss_mib, sse_events, wait_for

CONCURRENCY = int(os.environ.get("LOAD_CONCURRENCY", "200"))
SECONDS = float(os.environ.get("LOAD_SECONDS", "30"))
BODY = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "Say something about load tests."}],
        "max_tokens": 16, "stream": True}


@pytest.fixture(scope="module")
def load_adapter(start_adapter):
    # Own adapter: its memory is measured alone; access log off so disk I/O does not dominate the 2-core box.
    return start_adapter(env={"ACCESS_LOG": "false", "LOG_LEVEL": "warning"})


async def one_stream(client: httpx.AsyncClient) -> str | None:
    """None when the stream was complete and clean, else what went wrong."""
    phase = "before the response headers"
    try:
        async with client.stream("POST", "/chat/completions", json=BODY) as response:
            phase = "while reading the stream"
            if response.status_code != 200:
                return f"HTTP {response.status_code}: {(await response.aread())[:200]!r}"
            events = sse_events([line async for line in response.aiter_lines()])
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__} {phase}: {exc!r} (cause: {exc.__cause__!r}; at {time.strftime('%H:%M:%S')})"
    if not events or events[-1] != "[DONE]":
        return f"stream not closed by [DONE]: {events[-1:]}"
    chunks = [json.loads(e) for e in events[:-1]]
    if any("error" in c for c in chunks):
        return f"error event: {next(c for c in chunks if 'error' in c)}"
    if not any(choice.get("finish_reason") for c in chunks for choice in c["choices"]):
        return "no finish_reason"
    return None


async def run_load(base_url: str, seconds: float, rounds: int | None = None) -> tuple[int, list[str]]:
    deadline = time.monotonic() + seconds
    errors: list[str] = []
    done = 0
    # httpx's default 5 s keep-alive expiry, as the openai SDK uses (the adapter keeps idle connections longer).
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:

        async def worker() -> None:
            nonlocal done
            for _ in range(rounds or 10**9):
                if rounds is None and time.monotonic() > deadline:
                    return
                problem = await one_stream(client)
                done += 1
                if problem:
                    errors.append(problem)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return done, errors


def test_concurrent_streaming_load(load_adapter):
    pid = load_adapter.proc.pid
    start_rss = rss_mib(pid)
    done, errors = asyncio.run(run_load(load_adapter.base_url, 0, rounds=1))  # warm-up: one stream per client
    assert not errors, errors[:5]
    warm_rss = rss_mib(pid)
    started = time.monotonic()
    done, errors = asyncio.run(run_load(load_adapter.base_url, SECONDS))
    elapsed = time.monotonic() - started
    assert not errors, f"{len(errors)} of {done} streams failed, e.g. {errors[:5]}"
    wait_for(lambda: metric_value(load_adapter.url, "openai_adapter:num_requests_running", model=CHAT_MODEL) == 0,
             5, "no request left in flight")
    end_rss = rss_mib(pid)
    print(f"load: {done} streams in {elapsed:.1f}s ({done / elapsed:.1f}/s) at concurrency {CONCURRENCY}; "
          f"adapter RSS start {start_rss:.0f} MiB, after warm-up {warm_rss:.0f} MiB, after load {end_rss:.0f} MiB")
    assert done >= CONCURRENCY
    assert end_rss - warm_rss < max(32.0, 0.15 * warm_rss), "adapter memory kept growing under load"
