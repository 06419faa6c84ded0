"""One time scale for every deadline in the tests, so that a slow or busy machine stretches them all alike.

TEST_TIME_SCALE (1 on a quiet machine; `make test-loaded` sets more) multiplies each deadline that stands for
"this should take about N s here". Deadlines that are the contract under test (stop within 5 s of SIGTERM)
scale too: on a machine whose cores are taken by other work every step of a stop is slower, and the
contended run checks that nothing waits for a fixed time, not how fast a starved CPU is.
"""
from __future__ import annotations

import os
import time
from typing import Callable

SCALE = max(1.0, float(os.environ.get("TEST_TIME_SCALE", "1")))


def scaled(seconds: float) -> float:
    """`seconds` as meant on a quiet machine, stretched for this one."""
    return seconds * SCALE


def wait_until(condition: Callable[[], bool], seconds: float, interval: float = 0.05) -> bool:
    """Poll `condition` until it holds (True) or scaled(`seconds`) passed (False)."""
    deadline = time.monotonic() + scaled(seconds)
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True
