"""tritonserver + the adapter in front of it, started in order and stopped together (serve, tests, benches)."""
from __future__ import annotations

from pathlib import Path

from launcher.adapter_process import AdapterServer
from launcher.process import free_port
from launcher.tritonserver import TritonInstall, TritonServer


class Stack:
    def __init__(self, model_repository: Path, log_dir: Path, *, port: int = 0, host: str = "127.0.0.1",
                 triton_args: tuple[str, ...] = (), adapter_env: dict[str, str] | None = None,
                 install: TritonInstall | None = None, triton_ports: tuple[int, int, int] | None = None):
        http, grpc, metrics = triton_ports or (free_port(), free_port(), free_port())
        log_dir = Path(log_dir)
        self.triton = TritonServer(model_repository, http_port=http, grpc_port=grpc, metrics_port=metrics,
                                   log_file=log_dir / "tritonserver.log", install=install, extra_args=triton_args)
        self.adapter = AdapterServer(self.triton.grpc_url, port or free_port(), log_dir / "adapter.log", host=host,
                                     env=adapter_env)

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
        self.adapter.stop()
        self.triton.stop()

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
