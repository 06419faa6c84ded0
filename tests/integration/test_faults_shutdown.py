"""Graceful shutdown: SIGTERM stops accepting, lets in-flight streams finish up to SHUTDOWN_TIMEOUT_S, then exits."""
from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest

from launcher.adapter_process import AdapterServer
from launcher.process import free_port
from tests.integration.hardening_support import CHAT_MODEL, refuses_connections, sse_events
from tests.timing import scaled, wait_until

# ~1-2 s of decoding here on the 128,256-token demo model (quiet machine); even a CPU several times faster
# outlasts the 0.2 s deadline below, and a loaded one still ends within the 30 s drain.
STREAM = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "go on"}], "max_tokens": 800,
          "ignore_eos": True, "stream": True}


@pytest.fixture
def own_adapter(triton, tmp_path):
    started: list[AdapterServer] = []

    def start(timeout_s: float) -> AdapterServer:
        adapter = AdapterServer(triton.grpc_url, free_port(), tmp_path / f"adapter-{len(started)}.log",
                                env={"SHUTDOWN_TIMEOUT_S": str(timeout_s)})
        started.append(adapter)
        adapter.start()
        adapter.wait_ready(scaled(60))
        return adapter

    yield start
    for adapter in started:
        adapter.stop()


def read_stream_after_sigterm(adapter: AdapterServer) -> tuple[list[str], Exception | None, float]:
    """Start a long stream, SIGTERM the adapter after its first event; (events, error, seconds to exit)."""
    events: list[str] = []
    with httpx.stream("POST", f"{adapter.base_url}/chat/completions", json=STREAM, timeout=60) as response:
        lines = response.iter_lines()
        events += sse_events([next(lines)])
        adapter.proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        refused = threading.Event()
        threading.Thread(target=lambda: refused.set() if wait_until(lambda: refuses_connections(adapter.url), 5)
                         else None, daemon=True).start()
        try:
            for line in lines:
                events += sse_events([line])
        except httpx.HTTPError as exc:
            return events, exc, _exit_seconds(adapter, sent)
        assert refused.wait(scaled(5)), "the adapter still accepted connections during its shutdown"
    return events, None, _exit_seconds(adapter, sent)


def _exit_seconds(adapter: AdapterServer, since: float) -> float:
    adapter.proc.wait(scaled(30))
    return time.monotonic() - since


def test_sigterm_lets_in_flight_streams_finish(own_adapter):
    adapter = own_adapter(timeout_s=30)
    events, error, exited_after = read_stream_after_sigterm(adapter)
    assert error is None, error
    assert events[-1] == "[DONE]" and '"finish_reason":"length"' in events[-2].replace(" ", "")
    # uvicorn re-raises the captured SIGTERM once it has shut down cleanly.
    assert adapter.proc.returncode in (0, -signal.SIGTERM) and exited_after < scaled(30)
    assert "Application shutdown complete" in adapter.log_file.read_text()


def test_streams_past_the_deadline_are_cut_and_the_process_exits(own_adapter):
    adapter = own_adapter(timeout_s=0.2)
    events, error, exited_after = read_stream_after_sigterm(adapter)
    assert "[DONE]" not in events  # never presented as a complete answer...
    assert error is not None  # ...the client sees the broken stream
    assert exited_after < scaled(5)
