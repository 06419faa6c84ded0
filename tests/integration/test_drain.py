"""SIGTERM to `launcher serve` with streams running: new work is refused at once, streams that end within the
drain deadline (--drain-timeout) finish, longer ones are cut at it, and the whole stack stops within 5 s after."""
from __future__ import annotations

import signal
import threading
import time

import httpx

from tests.integration.hardening_support import CHAT_MODEL, refuses_connections, sse_events
from tests.timing import scaled, wait_until

DRAIN_S = 1.0
SHORT = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 24, "stream": True}
# Seconds of decoding on this CPU (800 tokens take 1-2 s): it outlasts the deadline on any machine that runs CI.
LONG = {**SHORT, "max_tokens": 2000, "ignore_eos": True, "n": 2}


class Reader(threading.Thread):
    """Reads one stream; `first` is set at its first event, `events` and `error` tell how it ended."""

    def __init__(self, url: str, body: dict):
        super().__init__(daemon=True)
        self.url, self.body = url, body
        self.first = threading.Event()
        self.events: list[str] = []
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            with httpx.stream("POST", f"{self.url}/chat/completions", json=self.body, timeout=120) as response:
                for line in response.iter_lines():
                    self.events += sse_events([line])
                    self.first.set()
        except httpx.HTTPError as exc:
            self.error = exc
        self.first.set()


def test_sigterm_drains_then_stops_within_5_s_of_the_deadline(serve, model_repository):
    served = serve(model_repository, "--drain-timeout", str(DRAIN_S))
    url = f"http://127.0.0.1:{served.port}/v1"
    long, short = Reader(url, LONG), Reader(url, SHORT)
    long.start()
    assert long.first.wait(scaled(30)) and not long.error, long.error
    short.start()
    assert short.first.wait(scaled(30)) and not short.error, short.error

    sent = time.monotonic()
    served.proc.send_signal(signal.SIGTERM)
    root = f"http://127.0.0.1:{served.port}"
    assert wait_until(lambda: refuses_connections(root), 1), "new connections still accepted"
    served.proc.wait(scaled(DRAIN_S + 30))
    stopped_after = time.monotonic() - sent
    short.join(scaled(10))
    long.join(scaled(10))

    assert short.error is None and short.events[-1] == "[DONE]", (short.error, short.events[-3:])
    assert "[DONE]" not in long.events, "a stream cut at the deadline must not look complete"
    assert served.proc.returncode == 0 and stopped_after < DRAIN_S + scaled(5), f"{stopped_after:.1f} s\n{served.text}"
