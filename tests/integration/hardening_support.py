"""Helpers shared by the hardening tests (auth, limits, backpressure, faults, metrics, load)."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.timing import scaled

CHAT_MODEL = os.environ.get("CHAT_MODEL", "tiny-llama-3")
EMBEDDING_MODEL = os.environ.get("EMBEDDING_MODEL", "all-MiniLM-L6-v2")
IMAGE_MODEL = os.environ.get("IMAGE_MODEL", "tiny-sdxl")


def assert_envelope(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"], error
    if code is not None:
        assert error["code"] == code, error
    return error


def metric_samples(base_url: str, name: str) -> list[tuple[dict, float]]:
    """(labels, value) of every sample named `name` on the adapter's /metrics."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    return [(s.labels, s.value) for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == name]


def metric_value(base_url: str, name: str, **labels: str) -> float:
    return sum(v for got, v in metric_samples(base_url, name) if all(got.get(k) == x for k, x in labels.items()))


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.02) -> float:
    """Seconds it took for `condition` to hold; fails the test after `timeout` (scaled: tests/timing.py)."""
    timeout = scaled(timeout)
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
    return time.monotonic() - start


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def sse_events(lines) -> list[str]:
    """The `data:` payloads of an SSE stream, in order."""
    return [line[len("data: "):] for line in lines if line.startswith("data: ")]


def refuses_connections(url: str) -> bool:
    """Whether a server at `url` (http://host:port) refuses new connections (its listener is closed)."""
    try:
        httpx.get(f"{url}/health", timeout=1)
    except httpx.ConnectError:
        return True
    return False
