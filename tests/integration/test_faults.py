"""Triton dies mid-stream and comes back: errors (not hangs, not fake successes), 503s, then recovery.

Runs its own tritonserver (fixed ports, so the restart lands where the adapter's channel points) and its own
adapter: the session's servers stay untouched.
"""
from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import openai
import pytest

from launcher.stack import Stack
from launcher.tritonserver import TritonServer
from tests.integration.hardening_support import CHAT_MODEL, assert_envelope, sse_events, wait_for

LONG = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "go on"}], "max_tokens": 2000,
        "ignore_eos": True, "stream": True}
SHORT = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}


@pytest.fixture(scope="module")
def stack(model_repository, tmp_path_factory):
    logs = tmp_path_factory.mktemp("faults")
    # Only the chat model: a faster start, twice.
    stack = Stack(model_repository, logs, triton_args=("--model-control-mode=explicit", f"--load-model={CHAT_MODEL}"))
    with stack:
        yield stack.triton, stack.adapter


def kill_hard(triton: TritonServer) -> None:
    os.killpg(triton.proc.pid, signal.SIGKILL)  # tritonserver and its Python-backend stubs, no goodbye
    triton.proc.wait()


class StreamReader(threading.Thread):
    """Reads one streaming chat through the official openai client, keeping its chunks and how it ended."""

    def __init__(self, base_url: str):
        super().__init__(daemon=True)
        self.client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=20)
        self.started, self.chunks, self.error = threading.Event(), [], None

    def run(self) -> None:
        try:
            request = {k: v for k, v in LONG.items() if k != "ignore_eos"}
            for chunk in self.client.chat.completions.create(**request, extra_body={"ignore_eos": True}):
                self.chunks.append(chunk)
                self.started.set()
        except openai.OpenAIError as exc:
            self.error = exc
        finally:
            self.started.set()


def test_triton_dies_mid_stream_then_recovers(stack):
    triton, adapter = stack
    reader = StreamReader(adapter.base_url)
    reader.start()
    assert reader.started.wait(30) and reader.chunks, reader.error
    killed = time.monotonic()
    kill_hard(triton)

    # The stream ends promptly with an error the client sees (the SSE error event), not with a success.
    reader.join(15)
    assert not reader.is_alive(), "the stream hung after tritonserver died"
    assert reader.error is not None, "a stream cut by a Triton failure looked like a success"
    assert isinstance(reader.error, openai.APIError) and not isinstance(reader.error, openai.APIConnectionError), \
        f"no SSE error event, the connection just broke: {reader.error!r}"
    assert "unavailable" in str(reader.error).lower() or "failed" in str(reader.error).lower(), reader.error
    assert not any(choice.finish_reason for chunk in reader.chunks for choice in chunk.choices)
    assert time.monotonic() - killed < 15
    print(f"client saw {type(reader.error).__name__}: {reader.error}")

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
