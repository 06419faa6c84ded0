"""tritonserver + the adapter in front of it, started in order and stopped together (serve, tests, benches)."""
from __future__ import annotations

import os
from pathlib import Path

from adapter.settings import Settings
from launcher.adapter_process import AdapterServer
from launcher.process import free_port
from launcher.tritonserver import TritonInstall, TritonServer

# In-flight requests may finish this long after SIGTERM (the adapter's SHUTDOWN_TIMEOUT_S unless set).
DRAIN_S = Settings.model_fields["shutdown_timeout_s"].default
STOP_MARGIN_S = 5.0  # a process that has not exited this long after its deadline is killed


class Stack:
    def __init__(self, model_repository: Path, log_dir: Path, *, port: int = 0, host: str = "127.0.0.1",
                 triton_args: tuple[str, ...] = (), adapter_env: dict[str, str] | None = None,
                 install: TritonInstall | None = None, triton_ports: tuple[int, int, int] | None = None,
                 drain_s: float | None = None):
        """drain_s: the adapter's SHUTDOWN_TIMEOUT_S (None: SHUTDOWN_TIMEOUT_S from the environment, else DRAIN_S)."""
        http, grpc, metrics = triton_ports or (free_port(), free_port(), free_port())
        log_dir = Path(log_dir)
        self.triton = TritonServer(model_repository, http_port=http, grpc_port=grpc, metrics_port=metrics,
                                   log_file=log_dir / "tritonserver.log", install=install, extra_args=triton_args)
        env = dict(adapter_env or {})
        if drain_s is not None:
            env["SHUTDOWN_TIMEOUT_S"] = str(drain_s)
        self.drain_s = float(env.get("SHUTDOWN_TIMEOUT_S", os.environ.get("SHUTDOWN_TIMEOUT_S", DRAIN_S)))
        self.adapter = AdapterServer(self.triton.grpc_url, port or free_port(), log_dir / "adapter.log", host=host,
                                     env=env)

    def start(self, timeout: float = 600.0) -> "Stack":
        """Raises ProcessStartError (with the relevant log lines) after stopping whatever did start."""
        try:
            self.triton.start()
            self.triton.wait_ready(timeout)
            self.adapter.start()
            self.adapter.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """The adapter first: it refuses new work at once and lets in-flight requests run up to the drain deadline
        (Triton serves them meanwhile); then tritonserver, whose models end whatever still runs."""
        self.adapter.stop(timeout=self.drain_s + STOP_MARGIN_S)
        self.triton.stop(timeout=STOP_MARGIN_S)

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
