"""Run a real `tritonserver` on a model repository.

Embedded default: the binary shipped in the `nvidia-pytriton` wheel, with the Python-backend stub recipe:
copy the stub for this interpreter into backends/python, put the venv's bin first on PATH (the stub finds
packages through the first `python3`) and point LD_LIBRARY_PATH at the base interpreter's libpython.
In the Triton container pass `--tritonserver /opt/tritonserver/bin/tritonserver`.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from launcher.process import ManagedProcess, http_ok, tail

# Triton's own log lines start like "E1128 02:12:05.123456 123 file.cc:12] message".
_LOG_LINE = re.compile(r"^[IWE]\d{4} \d\d:\d\d:\d\d\.\d+")
_FAILED_MODEL = re.compile(r"failed to load '([^']+)'")
# Harmless on CPU-only machines.
_CPU_NOISE = ("CudaDriverHelper", "pinned memory", "NVML", "DCGM", "GPU metrics")


@dataclass(frozen=True)
class TritonInstall:
    binary: Path
    backend_dir: Path


def embedded_install() -> TritonInstall:
    """The tritonserver inside nvidia-pytriton, with the Python-backend stub for this interpreter in place."""
    import pytriton  # noqa: PLC0415  (only the embedded path needs it)

    root = Path(pytriton.__file__).parent / "tritonserver"
    stub_name = "triton_python_backend_stub"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub_src = root / "python_backend_stubs" / version / stub_name
    stub_dst = root / "backends" / "python" / stub_name
    if not stub_dst.exists() or stub_dst.stat().st_size != stub_src.stat().st_size:
        shutil.copy2(stub_src, stub_dst)
    return TritonInstall(binary=root / "bin" / "tritonserver", backend_dir=root / "backends")


def stub_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment under which the Python-backend stub imports this venv's packages."""
    env = dict(os.environ if base is None else base)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([venv_bin, env.get("PATH", "")])
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in [libdir, env.get("LD_LIBRARY_PATH", "")] if p)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def model_errors(log_text: str, limit: int = 60) -> str:
    """Error lines (with their continuation lines, e.g. a Python traceback) and the names of failed models."""
    picked: list[str] = []
    keep = False
    for line in log_text.splitlines():
        if _LOG_LINE.match(line):
            keep = line.startswith("E") and not any(noise in line for noise in _CPU_NOISE)
        elif line.startswith("|"):  # the model status table: only the rows of failed models
            keep = False
            if "UNAVAILABLE" in line:
                picked.append(line)
        if keep:
            picked.append(line)
    failed = sorted(set(_FAILED_MODEL.findall(log_text)))
    header = f"models that failed to load: {', '.join(failed)}\n" if failed else ""
    return header + "\n".join(picked[:limit])


class TritonServer(ManagedProcess):
    name = "tritonserver"

    def __init__(self, model_repository: Path, *, http_port: int, grpc_port: int, metrics_port: int,
                 log_file: Path, install: TritonInstall | None = None, extra_args: tuple[str, ...] = ()):
        install = install or embedded_install()
        self.http_port, self.grpc_port, self.metrics_port = http_port, grpc_port, metrics_port
        argv = [
            str(install.binary),
            f"--model-repository={Path(model_repository).resolve()}",
            f"--backend-directory={install.backend_dir}",
            f"--http-port={http_port}", f"--grpc-port={grpc_port}", f"--metrics-port={metrics_port}",
            "--http-address=127.0.0.1", "--grpc-address=127.0.0.1",
            "--allow-gpu-metrics=false", "--strict-readiness=true", "--exit-on-error=true",
            *extra_args,
        ]
        super().__init__(argv, log_file, env=stub_environment())

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def ready(self) -> bool:
        return http_ok(f"{self.http_url}/v2/health/ready")

    def wait_ready(self, timeout: float = 300.0) -> None:
        self.wait_until(self.ready, timeout)

    def failure_report(self) -> str:
        text = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
        return model_errors(text) or tail(self.log_file)
