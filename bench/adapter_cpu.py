"""The adapter's own CPU per chat request, in process: the real app (middlewares, routers, SSE), Triton faked.

  .venv/bin/python bench/adapter_cpu.py [--requests 1000] [--rounds 8]

No network, no Triton: each request is the ASGI app called directly with a one-token answer from
bench/fake_llm_triton.py, so the time per request is the adapter's Python alone (on uvloop, as served).
Side by side, requests alternating in rounds: the app as served (the LLM routes are JSONBodyRoutes) and the same
app with FastAPI's own APIRoute for them (the baseline: dependency solving and FastAPI's request handling), for
streaming and JSON answers. Reports the median us per request of the rounds and the ratio to the baseline.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]  # run as a script from any directory

from fastapi import APIRouter  # noqa: E402
from bench.fake_llm_triton import MODEL, FakeRegistry, FakeTriton  # noqa: E402

import adapter.app  # noqa: E402
from adapter.paths import CHAT_COMPLETIONS, COMPLETIONS  # noqa: E402
from adapter.routers import chat, completions  # noqa: E402
from adapter.settings import Settings  # noqa: E402


def make_app(plain_routes: bool):
    routers = list(adapter.app.ROUTERS)
    if plain_routes:  # the same endpoints on FastAPI's own route class
        plain = APIRouter()
        plain.add_api_route(CHAT_COMPLETIONS, chat.chat_completions, methods=["POST"])
        plain.add_api_route(COMPLETIONS, completions.completions, methods=["POST"])
        adapter.app.ROUTERS[:] = [r for r in routers if r not in (chat.router, completions.router)] + [plain]
    try:
        app = adapter.app.create_app(Settings())
    finally:
        adapter.app.ROUTERS[:] = routers
    app.state.triton, app.state.registry = FakeTriton(), FakeRegistry()
    return app


async def request(app, body: bytes) -> int:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": CHAT_COMPLETIONS, "raw_path": CHAT_COMPLETIONS.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"bench"), (b"content-type", b"application/json"),
                         (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2)}
    done, messages, status = asyncio.Event(), [{"type": "http.request", "body": body, "more_body": False}], []

    async def receive() -> dict:
        if messages:
            return messages.pop()
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    done.set()
    return status[0]


async def run(requests: int, rounds: int) -> dict[str, list[float]]:
    apps = {"JSONBodyRoute (served)": make_app(False), "APIRoute (baseline)": make_app(True)}
    results: dict[str, list[float]] = {}
    for stream in (True, False):
        body = orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Hello there"}],
                             "max_tokens": 1, "stream": stream})
        for app in apps.values():  # warm-up, and a check that the requests succeed
            for _ in range(50):
                assert await request(app, body) == 200
        for r in range(rounds):
            names = list(apps) if r % 2 == 0 else list(apps)[::-1]
            for name in names:
                start = time.perf_counter()
                for _ in range(requests):
                    await request(apps[name], body)
                results.setdefault(f"{name}, {'stream' if stream else 'JSON'}", []).append(
                    1e6 * (time.perf_counter() - start) / requests)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000, help="requests per app and round")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the no-API-key warning of each app
    import uvloop  # noqa: PLC0415

    results = uvloop.run(run(args.requests, args.rounds))
    print("| app, answer | us per request (median of rounds) | ratio to the baseline (median of rounds) |")
    print("|---|---|---|")
    for name, values in results.items():
        base = results[name.replace("JSONBodyRoute (served)", "APIRoute (baseline)")]
        ratio = statistics.median(v / b for v, b in zip(values, base))
        print(f"| {name} | {statistics.median(values):.0f} | {ratio:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
