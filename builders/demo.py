"""Build the embedded demo repository: every family's tiny (or shipped) model, built by the user-facing path."""
from __future__ import annotations

import importlib
import shutil
from pathlib import Path

from builders.progress import step
from builders.target import CPU_TARGET, BuildTarget

# family -> module exposing build_demo(repo: Path, work: Path, target: BuildTarget) -> list[str] (ids served)
FAMILIES: dict[str, str] = {
    "sdxl": "builders.sdxl",
    "llm": "builders.llm",
    "embeddings": "builders.embeddings",
}


def build_demo(repo: Path, work: Path, only: list[str] | None = None, target: BuildTarget = CPU_TARGET) -> list[str]:
    if repo.exists():
        shutil.rmtree(repo)
    repo.mkdir(parents=True)
    served: list[str] = []
    for family, module in FAMILIES.items():
        if only and family not in only:
            continue
        with step(f"demo: {family}"):
            served += importlib.import_module(module).build_demo(repo, work / family, target)
    return served
