"""The builders' CLI prints only its own progress: no notices from libraries about parts it does not use."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_builders_cli_prints_no_torchvision_notices():
    run = subprocess.run([sys.executable, "-m", "builders", "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0
    assert "torchvision" not in run.stdout + run.stderr
    assert run.stderr == ""
