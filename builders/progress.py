"""Progress display for long build steps (rich spinner on a terminal, plain lines in CI logs)."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console

console = Console(stderr=True)


class BuildError(Exception):
    """A clear, user-facing build failure (missing or unsupported checkpoint, ...)."""


@contextmanager
def step(title: str) -> Iterator[None]:
    start = time.monotonic()
    with console.status(f"[bold]{title}[/] ..."):
        yield
    console.print(f"[green]done[/] {title} ({time.monotonic() - start:.1f}s)")
