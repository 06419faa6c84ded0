"""Session fixtures: the real tritonserver and the real adapter on free ports, talked to over the network."""
from __future__ import annotations

import atexit
import os
from pathlib import Path
from typing import Callable, Iterator

import httpx
import openai
import pytest

from launcher.adapter_process import AdapterServer
from launcher.process import ProcessStartError, free_port
from launcher.tritonserver import TritonInstall, TritonServer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def model_repository() -> Path:
    """The demo repository (`make test` builds it first); MODEL_REPOSITORY points elsewhere when set."""
    repo = Path(os.environ.get("MODEL_REPOSITORY", ROOT / "build" / "model_repository"))
    if not repo.exists():
        from builders.demo import build_demo  # noqa: PLC0415  (heavy imports only when needed)

        build_demo(repo, repo.parent / "work")
    return repo


def _start(process, wait) -> None:
    process.start()
    try:
        wait()
    except ProcessStartError as exc:
        process.stop()
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("logs")


def _container_install() -> TritonInstall | None:
    """TRITONSERVER=/opt/tritonserver/bin/tritonserver: the suites on a Triton container's own server (GPU targets)."""
    binary = os.environ.get("TRITONSERVER")
    return TritonInstall(Path(binary), Path(binary).parent.parent / "backends") if binary else None


@pytest.fixture(scope="session")
def triton(model_repository: Path, logs_dir: Path) -> Iterator[TritonServer]:
    server = TritonServer(model_repository, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                          log_file=logs_dir / "tritonserver.log", install=_container_install())
    _start(server, lambda: server.wait_ready(600))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def start_adapter(request: pytest.FixtureRequest, logs_dir: Path) -> Iterator[Callable[..., AdapterServer]]:
    """Factory for extra adapters with their own environment (auth, limits); all stopped at session end.

    Without triton_grpc_url an adapter talks to the session's tritonserver (started on first need)."""
    started: list[AdapterServer] = []

    def start(env: dict[str, str] | None = None, triton_grpc_url: str | None = None,
              ready_path: str = "/health/ready") -> AdapterServer:
        port = free_port()
        url = triton_grpc_url or request.getfixturevalue("triton").grpc_url
        adapter = AdapterServer(url, port, logs_dir / f"adapter-{port}.log", env=env)
        _start(adapter, lambda: adapter.wait_ready(120, ready_path))
        started.append(adapter)
        return adapter

    yield start
    for adapter in started:
        adapter.stop()


@pytest.fixture(scope="session")
def adapter(start_adapter) -> AdapterServer:
    return start_adapter()


@pytest.fixture(scope="session")
def openai_client(adapter: AdapterServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=adapter.base_url, api_key="unused", max_retries=0, timeout=300)


@pytest.fixture(scope="session")
def async_openai_client(adapter: AdapterServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=adapter.base_url, api_key="unused", max_retries=0, timeout=300)


@pytest.fixture(scope="session")
def http(adapter: AdapterServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=adapter.url, timeout=300) as client:
        yield client


def pytest_sessionfinish(session, exitstatus):
    """A model's initialize() run in-process (unit tests) registers runtime.shutdown's exit hook, meant for the stub:
    it ends the process with status 0 at exit, which would turn pytest's failure status into a pass."""
    from runtime import shutdown  # noqa: PLC0415

    atexit.unregister(shutdown.exit_process)
