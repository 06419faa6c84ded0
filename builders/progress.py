"""Progress display for long build steps (rich spinner on a terminal, plain lines in CI logs), with each step's
time and the process's memory: resident set now and its peak so far (builds are sized by their peak)."""
from __future__ import annotations

import resource
import sys
import time
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console

console = Console(stderr=True)
GB = 1e9


class BuildError(Exception):
    """A clear, user-facing build failure (missing or unsupported checkpoint, ...)."""


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()
    except OSError:
        return 0


def peak_rss_bytes() -> int:
    """Highest resident set size of this process, or of a finished subprocess of it (the LLM graph builder runs in
    one), so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return peak if sys.platform == "darwin" else peak * 1024


@contextmanager
def step(title: str) -> Iterator[None]:
    start = time.monotonic()
    with console.status(f"[bold]{title}[/] ..."):
        yield
    console.print(f"[green]done[/] {title} ({time.monotonic() - start:.1f}s, "
                  f"rss {rss_bytes() / GB:.2f} GB, peak {peak_rss_bytes() / GB:.2f} GB)", soft_wrap=True)
