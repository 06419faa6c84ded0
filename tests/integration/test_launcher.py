"""The local Triton launcher: a healthy repository comes up, a broken model fails loudly and briefly."""
from __future__ import annotations

import subprocess
import sys

from tests.fixtures.toy_repository import BROKEN, BROKEN_MESSAGE, HEALTHY, add_model


def _launch(repo, log_dir) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "launcher", "triton", "--model-repository", str(repo),
                           "--log-dir", str(log_dir), "--check", "--timeout", "120"],
                          capture_output=True, text=True, timeout=180)


def test_broken_model_exits_nonzero_with_its_error_lines(tmp_path):
    repo = tmp_path / "repo"
    add_model(repo, "fine", HEALTHY, task="embeddings")
    add_model(repo, "broken", BROKEN)
    result = _launch(repo, tmp_path / "logs")
    assert result.returncode == 1
    assert "models that failed to load: broken" in result.stderr
    assert BROKEN_MESSAGE in result.stderr
    assert "CudaDriverHelper" not in result.stderr  # CPU noise is filtered out
    full_log = (tmp_path / "logs" / "tritonserver.log").read_text()
    assert len(result.stderr.splitlines()) < len(full_log.splitlines()) / 2
    assert len(result.stderr.splitlines()) <= 70


def test_healthy_repository_becomes_ready_and_stops_cleanly(tmp_path):
    repo = tmp_path / "repo"
    add_model(repo, "fine", HEALTHY, task="embeddings")
    result = _launch(repo, tmp_path / "logs")
    assert result.returncode == 0, result.stderr
    assert "tritonserver ready" in result.stdout
    stub = subprocess.run(["pgrep", "-f", str(repo)], capture_output=True, text=True)
    assert stub.stdout.strip() == "", "tritonserver or its stubs outlived the launcher"
