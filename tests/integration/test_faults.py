"""Triton dies mid-stream and comes back: errors (not hangs, not fake successes), 503s, then recovery.

Runs its own tritonserver (fixed ports, so the restart lands where the adapter's channel points) and its own
adapter: the session's servers stay untouched.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time

import httpx
import pytest

from launcher.adapter_process import AdapterServer
from launcher.process import free_port
from launcher.tritonserver import TritonServer
from tests.integration.hardening_support import CHAT_MODEL, assert_envelope, sse_events, wait_for

LONG = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "go on"}], "max_tokens": 2000,
        "ignore_eos": True, "stream": True}
SHORT = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@pytest.fixture(scope="module")
def stack(model_repository, tmp_path_factory):
    logs = tmp_path_factory.mktemp("faults")
    # Only the chat model: a faster start, twice.
    triton = TritonServer(model_repository, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                          log_file=logs / "tritonserver.log",
                          extra_args=("--model-control-mode=explicit", f"--load-model={CHAT_MODEL}"))
    adapter = AdapterServer(triton.grpc_url, free_port(), logs / "adapter.log")
    try:
        triton.start()
        triton.wait_ready(300)
        adapter.start()
        adapter.wait_ready(60)
        yield triton, adapter
    finally:
        adapter.stop()
        triton.stop()


def kill_hard(triton: TritonServer) -> None:
    os.killpg(triton.proc.pid, signal.SIGKILL)  # tritonserver and its Python-backend stubs, no goodbye
    triton.proc.wait()


class StreamReader(threading.Thread):
    """Reads one SSE stream in the background, keeping its events and how it ended."""

    def __init__(self, url: str, body: dict):
        super().__init__(daemon=True)
        self.url, self.body = url, body
        self.started, self.events, self.error = threading.Event(), [], None

    def run(self) -> None:
        try:
            with httpx.stream("POST", self.url, json=self.body, timeout=httpx.Timeout(30, read=20)) as response:
                for line in response.iter_lines():
                    self.events += sse_events([line])
                    self.started.set()
        except httpx.HTTPError as exc:
            self.error = exc
        finally:
            self.started.set()


def test_triton_dies_mid_stream_then_recovers(stack):
    triton, adapter = stack
    reader = StreamReader(f"{adapter.base_url}/chat/completions", LONG)
    reader.start()
    assert reader.started.wait(30) and reader.events, reader.error
    killed = time.monotonic()
    kill_hard(triton)

    # The stream ends promptly, with an error event and not with a success.
    reader.join(15)
    assert not reader.is_alive(), "the stream hung after tritonserver died"
    chunks = [json.loads(e) for e in reader.events if e != "[DONE]"]
    errors = [c["error"] for c in chunks if "error" in c]
    assert errors or reader.error is not None, "stream cut by a Triton failure looked like a success"
    assert errors, f"no SSE error event, the connection just broke: {reader.error!r}"
    assert errors[-1]["code"] in ("service_unavailable", "internal_error") and errors[-1]["message"]
    assert not any(choice.get("finish_reason") for c in chunks for choice in c.get("choices", []))
    assert time.monotonic() - killed < 15

    # While Triton is down: not ready, and requests fail fast with 503 envelopes.
    wait_for(lambda: httpx.get(f"{adapter.url}/health/ready", timeout=5).status_code == 503, 5, "ready -> 503")
    for _ in range(2):
        start = time.monotonic()
        down = httpx.post(f"{adapter.base_url}/chat/completions", json=SHORT, timeout=30)
        assert_envelope(down, 503, "service_unavailable")
        assert time.monotonic() - start < 3.0
    # The model list is cached briefly (MODEL_CACHE_TTL_S, 5 s), then it is a 503 as well.
    wait_for(lambda: httpx.get(f"{adapter.base_url}/models", timeout=5).status_code == 503, 10, "models -> 503")

    # Triton back on the same ports: the same adapter process serves again, without a restart.
    adapter_pid = adapter.proc.pid
    triton.start()
    triton.wait_ready(300)
    back = time.monotonic()
    wait_for(lambda: httpx.get(f"{adapter.url}/health/ready", timeout=5).status_code == 200, 20, "ready again")
    wait_for(lambda: httpx.post(f"{adapter.base_url}/chat/completions", json=SHORT, timeout=30).status_code == 200,
             20, "a chat completion to succeed again")
    print(f"adapter serving again {time.monotonic() - back:.2f}s after tritonserver was ready")
    with httpx.stream("POST", f"{adapter.base_url}/chat/completions", json={**SHORT, "stream": True},
                      timeout=30) as response:
        assert sse_events(response.iter_lines())[-1] == "[DONE]"
    assert adapter.proc.pid == adapter_pid and adapter.running
