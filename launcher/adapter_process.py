"""The adapter (uvicorn) as a child process, used by `launcher serve` and the test harness."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from adapter.paths import API, HEALTH_READY
from launcher.process import ManagedProcess, http_ok


class AdapterServer(ManagedProcess):
    name = "adapter"

    def __init__(self, triton_grpc_url: str, port: int, log_file: Path, host: str = "127.0.0.1",
                 env: dict[str, str] | None = None):
        self.triton_grpc_url, self.host, self.port = triton_grpc_url, host, port
        self.extra_env = env or {}
        super().__init__([sys.executable, "-m", "adapter", "--host", host, "--port", str(port)], log_file)

    def start(self) -> None:
        self.env = {**os.environ, "TRITON_GRPC_URL": self.triton_grpc_url, **self.extra_env}
        super().start()

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}{API}"

    def wait_ready(self, timeout: float = 120.0, path: str = HEALTH_READY) -> None:
        """path=HEALTH waits only for the process (e.g. when Triton is meant to be down)."""
        self.wait_until(lambda: http_ok(f"{self.url}{path}"), timeout)
