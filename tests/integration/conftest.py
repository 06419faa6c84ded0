"""Fixtures shared by the integration tests that start `python -m launcher serve` themselves."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.launcher_serve import Served


@pytest.fixture
def serve(tmp_path):
    started: list[Served] = []

    def start(repo: Path, *args: str) -> Served:
        served = Served(repo, tmp_path / f"logs{len(started)}", *args)
        started.append(served)
        served.wait_for(lambda: "API ready at" in served.text, 600, "readiness")
        return served

    yield start
    for served in started:
        served.stop()
