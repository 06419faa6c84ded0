"""A child process with a log file, a readiness probe and a clean, orphan-free stop."""
from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable


class ProcessStartError(RuntimeError):
    """The process died or never became ready; the message carries the relevant log lines."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return ""
    with path.open(errors="replace") as f:
        return "".join(deque(f, maxlen=lines))


_PR_SET_PDEATHSIG = 1  # prctl(2)
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None
# Every child is started from this one thread. PR_SET_PDEATHSIG fires when the *thread* that forked the child
# ends, and this thread lives as long as the launcher (the supervisor's thread, which restarts processes, does
# not: it ends at shutdown, while its children are still being stopped gracefully).
_spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spawner")


def _die_with(parent: int):
    """preexec_fn: SIGTERM this child when the launcher dies, even by SIGKILL or the OOM killer, so that no
    tritonserver or adapter outlives it holding ports and GPU memory (its own session keeps it out of the
    terminal's signals, so nothing else would end it). SIGTERM, not SIGKILL: Triton then still stops its stubs."""
    def preexec() -> None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the launcher died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)
    return preexec if _prctl is not None else None


class ManagedProcess:
    """Runs `argv` in its own process group so that stop() also reaps grandchildren (Triton's stubs)."""

    name = "process"

    def __init__(self, argv: list[str], log_file: Path, env: dict[str, str] | None = None):
        self.argv = argv
        self.log_file = Path(log_file)
        self.env = env
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_file.open("wb")
        try:
            self.proc = _spawner.submit(subprocess.Popen, self.argv, stdout=log, stderr=subprocess.STDOUT,
                                        env=self.env, stdin=subprocess.DEVNULL, start_new_session=True,
                                        preexec_fn=_die_with(os.getpid())).result()
        finally:
            log.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_code(self) -> int | None:
        """The exit status (negative: killed by that signal), None while running or never started."""
        return None if self.proc is None else self.proc.poll()

    def failure_report(self) -> str:
        """What to show when the process fails; subclasses narrow the log to what matters."""
        return tail(self.log_file)

    def wait_until(self, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                code = self.proc.returncode if self.proc else None
                raise ProcessStartError(f"{self.name} exited with code {code}:\n{self.failure_report()}")
            if ready():
                return
            time.sleep(0.25)
        raise ProcessStartError(f"{self.name} not ready after {timeout:.0f}s:\n{self.failure_report()}")

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        # Kill what is left of the group even if the leader exited (orphaned stubs).
        self._signal(signal.SIGKILL)
        self.proc.wait()

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
