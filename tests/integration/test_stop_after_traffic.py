"""After any traffic, `launcher serve` stops within 5 s of SIGTERM, every model unloaded (none held live).

The load (bench/mixed_load.py) mixes every route and both of Triton's interfaces, finished, cut,
abandoned and model-refused requests. A model-refused request is the risky one: resetting the gRPC stream after
the model's error response, which is already the stream's last, leaks the stream's reference to the model in
Triton 2.51, and Triton then waits out its whole exit timeout ("Found 1 live models"); the adapter lets such
streams end on their own (adapter/triton_client.py `_let_finish`).
"""
from __future__ import annotations

import signal
import time

import httpx

from bench import mixed_load
from launcher.process import free_port
from tests.integration.hardening_support import CHAT_MODEL, metric_samples
from tests.integration.launcher_serve import Served
from tests.timing import scaled, wait_until

MAX_BATCH_SIZE = 32  # the demo LLM's slots (builders/llm/__init__.py)
RUNNING = "openai_adapter:num_requests_running"


def _start(serve, model_repository) -> tuple[Served, mixed_load.Urls]:
    http, grpc, metrics = free_port(), free_port(), free_port()
    served = serve(model_repository, "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics))
    urls = mixed_load.Urls(f"http://127.0.0.1:{served.port}", f"http://127.0.0.1:{http}", f"127.0.0.1:{grpc}")
    return served, urls


def _adapter_idle(urls: mixed_load.Urls) -> bool:
    running = metric_samples(urls.adapter, RUNNING)
    return bool(running) and all(value == 0 for _, value in running)


def _every_slot_free(urls: mixed_load.Urls) -> float:
    """Seconds a request that needs every generator slot (n = the batch size) takes: it waits for any slot
    still held by an abandoned generation, which without max_tokens runs to the end of the context window."""
    start = time.monotonic()
    response = httpx.post(f"{urls.adapter}/v1/chat/completions", timeout=120, json={
        "model": CHAT_MODEL, "messages": mixed_load.HELLO, "n": MAX_BATCH_SIZE, "max_tokens": 1})
    assert response.status_code == 200, response.text
    return time.monotonic() - start


def test_sigterm_after_mixed_abandoned_traffic_stops_everything_within_5_s(serve, model_repository):
    served, urls = _start(serve, model_repository)
    mixed_load.drive(urls)

    assert wait_until(lambda: _adapter_idle(urls), 10), metric_samples(urls.adapter, RUNNING)
    took = _every_slot_free(urls)
    assert took < scaled(3), f"a request needing every slot waited {took:.1f} s: an abandoned generation held one"

    sent = time.monotonic()
    served.proc.send_signal(signal.SIGTERM)
    served.proc.wait(scaled(30))
    stopped_after = time.monotonic() - sent
    log = (served.log_dir / "tritonserver.log").read_text(errors="replace")
    assert f"successfully unloaded '{CHAT_MODEL}'" in log, log[-3000:]  # not the exit timeout giving up
    assert served.proc.returncode == 0 and stopped_after < scaled(5), f"{stopped_after:.1f} s\n{served.text}"
