"""Per-model in-flight bound (429 + Retry-After) and client disconnects cancelling the Triton work."""
from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.integration.hardening_support import CHAT_MODEL, assert_envelope, metric_value, wait_for

LONG = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "tell me everything"}],
        "max_tokens": 2000, "ignore_eos": True}  # ~2 s of decoding at batch 1 on this CPU
SHORT = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


def running(adapter) -> float:
    return metric_value(adapter.url, "openai_adapter:num_requests_running", model=CHAT_MODEL)


@pytest.fixture(scope="module")
def one_slot(start_adapter):
    return start_adapter(env={"MAX_IN_FLIGHT_PER_MODEL": "1", "RETRY_AFTER_S": "2"})


def test_beyond_the_bound_is_429_with_retry_after(one_slot):
    with httpx.Client(base_url=one_slot.base_url, timeout=60) as client:
        with client.stream("POST", "/chat/completions", json={**LONG, "stream": True}) as held:
            lines = held.iter_lines()  # keep the iterator: dropping it would close the connection
            assert next(lines).startswith("data: ")  # the stream has started: it holds the model's only slot
            rejected = client.post("/chat/completions", json=SHORT)
            error = assert_envelope(rejected, 429, "rate_limit_exceeded")
            assert rejected.headers["retry-after"] == "2" and "max_in_flight_per_model" in error["message"]
            other = client.get("/models")  # requests without a model are not bounded
            assert other.status_code == 200
            rest = [line for line in lines if line]
        assert rest[-1] == "data: [DONE]"
        wait_for(lambda: running(one_slot) == 0, 5, "the stream's slot to be released")
        ok = client.post("/chat/completions", json=SHORT)  # the slot is free again
        assert ok.status_code == 200, ok.text
    assert metric_value(one_slot.url, "openai_adapter:requests_rejected_total", model=CHAT_MODEL) >= 1
    assert metric_value(one_slot.url, "openai_adapter:requests_total", model=CHAT_MODEL, status="429") >= 1


async def _read_all(client: httpx.AsyncClient, body: dict) -> httpx.Response:
    async with client.stream("POST", "/chat/completions", json=body) as response:
        await response.aread()
    return response


async def abandon_long_requests(adapter, count: int, stream: bool) -> None:
    """`count` long requests; once all are in flight, every client gives up (drops its connection)."""
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(base_url=adapter.base_url, timeout=60, limits=limits) as client:
        tasks = [asyncio.create_task(_read_all(client, {**LONG, "stream": stream})) for _ in range(count)]
        deadline = time.monotonic() + 30
        while running(adapter) < count:
            finished = [t for t in tasks if t.done()]
            assert not finished, f"a long request ended early: {finished[0].result().text[:300]}"
            assert time.monotonic() < deadline, "the long requests never were all in flight"
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_disconnect_cancels_requests_and_frees_generator_slots(adapter, stream):
    # More abandoned long requests than the generator's batch (32 on the tiny model), so some also queue.
    before = adapter.log_file.read_text().count('"status": 499')
    asyncio.run(abandon_long_requests(adapter, 40, stream))
    gone = time.monotonic()
    wait_for(lambda: running(adapter) == 0, 2, "the abandoned requests to leave the adapter")
    # Uncancelled, 40 x 2000 tokens would keep the generator busy for many seconds; freed slots serve at once.
    start = time.monotonic()
    response = httpx.post(f"{adapter.base_url}/chat/completions", json=SHORT, timeout=60)
    assert response.status_code == 200, response.text
    assert time.monotonic() - start < 2.0, "the generator was still busy with abandoned requests"
    assert time.monotonic() - gone < 4.0
    assert adapter.log_file.read_text().count('"status": 499') - before == 40  # "client closed request"
