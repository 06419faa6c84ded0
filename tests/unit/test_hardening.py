"""Hardening layers without Triton: auth, limits, backpressure, request id / access log, disconnect cancel."""
from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest
from fastapi import FastAPI, Request

from adapter import metrics
from adapter.errors import install_error_handlers
from adapter.middleware import install_hardening
from adapter.middleware.access import configure_access_logger
from adapter.middleware.auth import ApiKeyChecker, is_exempt
from adapter.middleware.backpressure import InFlightLimiter
from adapter.middleware.guard import run_cancelling_on_disconnect
from adapter.middleware.limits import Limits, check_limits, count_embedding_inputs
from adapter.settings import Settings

# ---- auth ---------------------------------------------------------------------------------------------------


def test_checker_accepts_configured_keys_only():
    checker = ApiKeyChecker(frozenset({"sk-one", "sk-two"}))
    assert checker.check("Bearer sk-one") is None
    assert checker.check("bearer sk-two") is None
    for bad in (None, "", "Bearer", "Bearer ", "Basic sk-one", "sk-one", "Bearer sk-three", "Bearer sk-one2"):
        err = checker.check(bad)
        assert err is not None and err.status == 401 and err.code == "invalid_api_key", bad
        assert "sk-one" not in err.message and "sk-three" not in err.message


def test_no_keys_means_auth_disabled():
    assert not ApiKeyChecker(frozenset()).enabled


def test_exempt_paths_match_whole_segments():
    exempt = ("/health", "/metrics")
    assert is_exempt("/health", exempt) and is_exempt("/health/ready", exempt) and is_exempt("/metrics", exempt)
    assert not is_exempt("/healthz", exempt) and not is_exempt("/v1/models", exempt)


def test_keys_from_env_and_file(tmp_path, monkeypatch):
    keys_file = tmp_path / "keys"
    keys_file.write_text("# ops keys\nsk-file-1\n\n  sk-file-2  \n")
    monkeypatch.setenv("API_KEYS", "sk-env-1, sk-env-2,")
    monkeypatch.setenv("API_KEYS_FILE", str(keys_file))
    assert Settings().load_api_keys() == {"sk-env-1", "sk-env-2", "sk-file-1", "sk-file-2"}


# ---- limits ---------------------------------------------------------------------------------------------------

LIMITS = Limits(max_body_bytes=1000, max_n=4, max_tokens=64, max_embedding_inputs=3, max_images=2)


@pytest.mark.parametrize("path,body,param", [
    ("/v1/chat/completions", {"n": 5}, "n"),
    ("/v1/completions", {"max_tokens": 65}, "max_tokens"),
    ("/v1/chat/completions", {"max_completion_tokens": 1000}, "max_completion_tokens"),
    ("/v1/embeddings", {"input": ["a", "b", "c", "d"]}, "input"),
    ("/v1/embeddings", {"input": [[1], [2], [3], [4]]}, "input"),
    ("/v1/images/generations", {"n": 3}, "n"),
])
def test_limit_violations_name_the_limit(path, body, param):
    err = check_limits(path, body, LIMITS)
    assert err is not None and err.status == 400 and err.param == param and err.code == "limit_exceeded"
    assert "limit" in err.message


@pytest.mark.parametrize("path,body", [
    ("/v1/chat/completions", {"n": 4, "max_tokens": 64}),
    ("/v1/chat/completions", {"n": "5", "max_tokens": True}),  # wrong types: the router's validation answers
    ("/v1/embeddings", {"input": [1, 2, 3, 4, 5]}),  # one input of token ids
    ("/v1/embeddings", {"input": "one string"}),
    ("/v1/images/generations", {"n": 2}),
    ("/v1/models", {"n": 1000}),
    ("/v1/chat/completions", ["not", "an", "object"]),
])
def test_requests_within_limits_pass(path, body):
    assert check_limits(path, body, LIMITS) is None


def test_zero_disables_a_limit():
    assert check_limits("/v1/chat/completions", {"n": 10**6}, Limits(1000, 0, 0, 0, 0)) is None


def test_embedding_input_count():
    assert count_embedding_inputs("x") == 1
    assert count_embedding_inputs([1, 2, 3]) == 1
    assert count_embedding_inputs(["a", "b"]) == 2
    assert count_embedding_inputs([[1], [2, 3]]) == 2


# ---- backpressure -----------------------------------------------------------------------------------------------


async def test_limiter_rejects_beyond_limit_and_frees_slots():
    limiter = InFlightLimiter(limit=2)
    await limiter.acquire("m")
    await limiter.acquire("m")
    await limiter.acquire("other")  # per model
    with pytest.raises(Exception) as info:
        await limiter.acquire("m")
    assert info.value.status == 429 and info.value.headers == {"Retry-After": "1"}
    limiter.release("m")
    await limiter.acquire("m")
    for model in ("m", "m", "other"):
        limiter.release(model)
    assert limiter.running("m") == 0 and not limiter._models  # no memory kept for idle models


async def test_limiter_queue_waits_then_times_out():
    limiter = InFlightLimiter(limit=1, queue_timeout_s=0.2)
    await limiter.acquire("m")
    waiter = asyncio.create_task(limiter.acquire("m"))
    await asyncio.sleep(0.05)
    limiter.release("m")
    await asyncio.wait_for(waiter, 1)  # got the freed slot
    with pytest.raises(Exception) as info:
        await limiter.acquire("m")  # waits 0.2 s, then 429
    assert info.value.status == 429
    limiter.release("m")
    assert not limiter._models


# ---- the layers together on a small app --------------------------------------------------------------------------


class FakeRegistry:
    class Model:
        def __init__(self, id):
            self.id = id

    async def find(self, model_id):
        return self.Model(model_id) if model_id == "m" else None


def make_app(**env) -> FastAPI:
    settings = Settings(**env)
    app = FastAPI()
    app.state.registry = FakeRegistry()
    install_error_handlers(app)
    install_hardening(app, settings)
    app.state.release = asyncio.Event()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> dict:
        body = await request.json()
        metrics.record_tokens(body["model"], 7, 3)
        if body.get("hold"):
            await request.app.state.release.wait()
        return {"ok": True, "request_id": request.state.request_id}

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    return app


def client(app: FastAPI, **headers) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", headers=headers)


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == code
    return error


async def test_auth_layer():
    app = make_app(api_keys="sk-good")
    async with client(app) as c:
        assert_envelope(await c.post("/v1/chat/completions", json={"model": "m"}), 401, "invalid_api_key")
        r = await c.post("/v1/chat/completions", json={"model": "m"}, headers={"Authorization": "Bearer sk-bad"})
        assert_envelope(r, 401, "invalid_api_key")
        r = await c.post("/v1/chat/completions", json={"model": "m"}, headers={"Authorization": "Bearer sk-good"})
        assert r.status_code == 200
        assert (await c.get("/health")).status_code == 200


async def test_body_size_and_limits():
    app = make_app(max_body_bytes=200, max_n=2)
    async with client(app) as c:
        error = assert_envelope(await c.post("/v1/chat/completions", json={"model": "m", "x": "y" * 300}),
                                413, "request_too_large")
        assert "200 bytes" in error["message"]
        error = assert_envelope(await c.post("/v1/chat/completions", json={"model": "m", "n": 3}), 400,
                                "limit_exceeded")
        assert error["param"] == "n"
        assert (await c.post("/v1/chat/completions", json={"model": "m", "n": 2})).status_code == 200


async def test_request_id_echo_and_access_log(caplog):
    app = make_app()
    caplog.set_level(logging.INFO, logger="adapter.access")
    logging.getLogger("adapter.access").propagate = True  # let caplog see the JSON lines
    try:
        async with client(app) as c:
            r = await c.post("/v1/chat/completions", json={"model": "m", "messages": "secret prompt"},
                             headers={"x-request-id": "client-id-1"})
            assert r.headers["x-request-id"] == "client-id-1" and r.json()["request_id"] == "client-id-1"
            r = await c.post("/v1/chat/completions", json={"model": "m"}, headers={"x-request-id": "bad id; with spaces"})
            assert r.headers["x-request-id"].startswith("req-")
    finally:
        logging.getLogger("adapter.access").propagate = False
    lines = [json.loads(rec.getMessage()) for rec in caplog.records if rec.name == "adapter.access"]
    first = next(line for line in lines if line["request_id"] == "client-id-1")
    assert first["model"] == "m" and first["status"] == 200 and first["route"] == "/v1/chat/completions"
    assert first["prompt_tokens"] == 7 and first["completion_tokens"] == 3 and first["latency_ms"] >= 0
    assert "secret prompt" not in caplog.text


async def test_backpressure_429_with_retry_after():
    app = make_app(max_in_flight_per_model=1, retry_after_s=3)
    async with client(app) as c:
        held = asyncio.create_task(c.post("/v1/chat/completions", json={"model": "m", "hold": True}))
        while metrics.requests_in_flight.labels("m")._value.get() < 1:
            await asyncio.sleep(0.01)
        r = await c.post("/v1/chat/completions", json={"model": "m"})
        assert_envelope(r, 429, "rate_limit_exceeded")
        assert r.headers["retry-after"] == "3"
        app.state.release.set()
        assert (await held).status_code == 200
        assert (await c.post("/v1/chat/completions", json={"model": "m"})).status_code == 200


async def test_disconnect_cancels_the_handler():
    cancelled = asyncio.Event()

    async def app(scope, receive, send):
        assert (await receive())["body"] == b"{}"
        try:
            await asyncio.sleep(30)  # stands for a Triton call
        except asyncio.CancelledError:
            cancelled.set()
            raise

    messages = asyncio.Queue()

    async def receive():
        return await messages.get()

    async def send(message):
        pass

    task = asyncio.create_task(run_cancelling_on_disconnect(app, {"type": "http"}, b"{}", receive, send))
    await asyncio.sleep(0.05)
    await messages.put({"type": "http.disconnect"})
    assert await asyncio.wait_for(task, 2) is True
    assert cancelled.is_set()


async def test_completed_response_is_not_reported_as_disconnect():
    async def app(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive():
        await asyncio.sleep(10)

    sent = []

    async def send(message):
        sent.append(message)

    assert await run_cancelling_on_disconnect(app, {"type": "http"}, b"", receive, send) is False
    assert sent[-1]["body"] == b"ok"


async def test_unknown_models_get_no_slot_and_no_metric_label(caplog):
    app = make_app(max_in_flight_per_model=1)
    configure_access_logger()  # what the app's first request does (it turns propagation off): before, not after
    caplog.set_level(logging.INFO, logger="adapter.access")
    logging.getLogger("adapter.access").propagate = True
    try:
        async with client(app) as c:
            for name in ("random-1", "random-2"):
                r = await c.post("/v1/chat/completions", json={"model": name}, headers={"x-request-id": name})
                assert r.status_code == 200  # the fake router accepts anything; the real one answers 404
    finally:
        logging.getLogger("adapter.access").propagate = False
    labels = {s.labels.get("model") for s in metrics.requests_total.collect()[0].samples}
    assert "random-1" not in labels and "random-2" not in labels
    logged = [json.loads(rec.getMessage()) for rec in caplog.records if rec.name == "adapter.access"]
    assert {line["model"] for line in logged if line["request_id"].startswith("random")} == {"random-1", "random-2"}


async def test_queue_mode_waits_for_a_free_slot():
    app = make_app(max_in_flight_per_model=1, queue_timeout_s=5)
    async with client(app) as c:
        held = asyncio.create_task(c.post("/v1/chat/completions", json={"model": "m", "hold": True}))
        while metrics.requests_in_flight.labels("m")._value.get() < 1:
            await asyncio.sleep(0.01)
        queued = asyncio.create_task(c.post("/v1/chat/completions", json={"model": "m"}))
        await asyncio.sleep(0.1)
        assert not queued.done()  # waiting, not rejected
        app.state.release.set()
        assert (await held).status_code == 200 and (await queued).status_code == 200
