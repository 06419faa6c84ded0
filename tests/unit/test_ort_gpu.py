"""The onnxruntime-gpu session paths, run in their own venv (make ort-gpu-venv): onnxruntime and
onnxruntime-gpu cannot be installed side by side. `make test` / `make unit` create that venv first. The file is
named so that the main suite's collection (onnxruntime CPU) does not pick it up."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / os.environ.get("ORT_GPU_VENV", ".venv-ort-gpu") / "bin" / "python"


def test_session_paths_under_onnxruntime_gpu():
    if not PYTHON.exists():
        pytest.fail(f"{PYTHON} missing: run `make ort-gpu-venv` (make test does)", pytrace=False)
    check = "tests/ort_gpu/sessions_check.py"
    run = subprocess.run([str(PYTHON), "-m", "pytest", "-q", "-p", "no:cacheprovider", check], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "failed" not in run.stdout
