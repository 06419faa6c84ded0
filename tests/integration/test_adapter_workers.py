"""ADAPTER_WORKERS=2: two adapter processes on one port, each with its own gRPC channel, metrics merged."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.integration.hardening_support import CHAT_MODEL, metric_value

pytestmark = pytest.mark.integration


def children(pid: int) -> list[int]:
    return [int(p.parent.name) for p in Path("/proc").glob("[0-9]*/stat")
            if p.exists() and int(p.read_text().rsplit(")", 1)[1].split()[1]) == pid]


def test_two_workers_share_the_port_and_merge_their_metrics(start_adapter):
    adapter = start_adapter(env={"ADAPTER_WORKERS": "2"})
    assert len([c for c in children(adapter.proc.pid) if Path(f"/proc/{c}/cmdline").read_bytes().count(b"spawn")]) == 2
    body = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "ignore_eos": True}
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: httpx.post(f"{adapter.base_url}/chat/completions", json=body,
                                                   timeout=60).status_code, range(8)))
    assert codes == [200] * 8
    labels = {"route": "/v1/chat/completions", "model": CHAT_MODEL, "status": "200"}
    assert metric_value(adapter.url, "openai_adapter:requests_total", **labels) == 8  # both workers' counts
    assert metric_value(adapter.url, "openai_adapter:generation_tokens_total", model=CHAT_MODEL) == 32
