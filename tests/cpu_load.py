"""Test-only CPU load: `python -m tests.cpu_load [--workers N] -- COMMAND...` runs COMMAND while N busy processes
(default: one per core) keep every core taken, as other jobs do on a shared CI machine, then stops them.

COMMAND runs with TEST_TIME_SCALE set (tests/timing.py), unless already set. The burners end with this process
even when it is killed (PR_SET_PDEATHSIG), so a cancelled run leaves no load behind.
"""
from __future__ import annotations

import argparse
import ctypes
import multiprocessing
import os
import signal
import subprocess
import sys

DEFAULT_SCALE = "3"  # two cores shared with as many burners as cores: each process gets about half its CPU
_PR_SET_PDEATHSIG = 1


def _burn() -> None:
    ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before prctl took effect
        return
    x = 0
    while True:  # pure-Python arithmetic: one core, no memory, no I/O
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF


def run_loaded(command: list[str], workers: int) -> int:
    burners = [multiprocessing.Process(target=_burn, daemon=True) for _ in range(workers)]
    for burner in burners:
        burner.start()
    try:
        env = {**os.environ, "TEST_TIME_SCALE": os.environ.get("TEST_TIME_SCALE", DEFAULT_SCALE)}
        return subprocess.call(command, env=env)
    finally:
        for burner in burners:
            burner.kill()
            burner.join()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.cpu_load", description=__doc__)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give a command after --")
    return run_loaded(command, args.workers)


if __name__ == "__main__":
    sys.exit(main())
