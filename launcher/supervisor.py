"""Supervision of the stack's processes: restart one that exits unexpectedly, give up after too many crashes.

A watcher thread polls each process. When one exits while it should run, the supervisor logs its exit status and
the last lines of its log, waits a backoff (doubling per recent crash, capped), and starts it again on the same
ports, so the adapter reconnects to the new Triton by itself and clients find the adapter where it was. More than
`max_crashes` crashes of one process within `window_s` means the fault will not go away by restarting: the
supervisor stops and reports it, and the launcher exits non-zero so that the orchestrator (Kubernetes, systemd,
docker --restart) takes over.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from launcher.process import ProcessStartError, tail

log = logging.getLogger("launcher.supervisor")


class Supervised(Protocol):
    """What the supervisor needs from a process (launcher.process.ManagedProcess and its subclasses)."""
    name: str
    log_file: Path

    @property
    def running(self) -> bool: ...

    def exit_code(self) -> int | None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def wait_ready(self, timeout: float) -> None: ...


@dataclass(frozen=True)
class RestartPolicy:
    max_crashes: int = 5        # K: this many crashes of one process within window_s -> give up
    window_s: float = 300.0
    backoff_s: float = 1.0      # first delay, doubled per recent crash
    max_backoff_s: float = 30.0
    ready_timeout_s: float = 300.0
    log_lines: int = 20

    def delay(self, recent_crashes: int) -> float:
        return min(self.backoff_s * 2 ** max(recent_crashes - 1, 0), self.max_backoff_s)


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


class CrashWindow:
    """Crash times of one process; `record` says how many fall inside the window."""

    def __init__(self, window_s: float, clock: Callable[[], float] = time.monotonic):
        self.window_s, self.clock = window_s, clock
        self.times: deque[float] = deque()

    def record(self) -> int:
        now = self.clock()
        self.times.append(now)
        while self.times and now - self.times[0] > self.window_s:
            self.times.popleft()
        return len(self.times)


class Supervisor:
    def __init__(self, processes: list[Supervised], policy: RestartPolicy = RestartPolicy(), poll_s: float = 0.5):
        self.processes, self.policy, self.poll_s = processes, policy, poll_s
        self.crashes = {p.name: CrashWindow(policy.window_s) for p in processes}
        self.restarts = {p.name: 0 for p in processes}
        self.failure: str | None = None  # why the supervisor gave up
        self.done = threading.Event()    # set when it gave up or was stopped
        self._stopping = threading.Event()
        self._spawn = threading.Lock()   # no new process once stop() has returned
        self._thread: threading.Thread | None = None

    def start(self) -> "Supervisor":
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Call before stopping the processes: from here on an exit is expected, and nothing is restarted.
        Returns at once even while a restart waits for readiness (stopping the processes ends that wait)."""
        with self._spawn:
            self._stopping.set()
        self.done.set()

    def join(self, timeout: float = 5.0) -> None:
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _watch(self) -> None:
        while not self._stopping.wait(self.poll_s):
            for process in self.processes:
                if not self._stopping.is_set() and not process.running and not self._recover(process):
                    self.done.set()
                    return

    def _recover(self, process: Supervised) -> bool:
        """Restart a process that died; False when it crashed too often (self.failure says why)."""
        while not self._stopping.is_set():
            status = describe_exit(process.exit_code())
            count = self.crashes[process.name].record()
            log.error("%s %s (crash %d; at most %d within %.0f s); last log lines:\n%s", process.name, status, count,
                      self.policy.max_crashes, self.policy.window_s,
                      tail(Path(process.log_file), self.policy.log_lines).rstrip())
            if count >= self.policy.max_crashes:
                self.failure = f"{process.name} {status}: {count} crashes within {self.policy.window_s:.0f} s"
                log.error("giving up: %s", self.failure)
                return False
            delay = self.policy.delay(count)
            log.warning("restarting %s in %.1f s", process.name, delay)
            if self._stopping.wait(delay) or not self._relaunch(process, count):
                return True
            try:
                process.wait_ready(self.policy.ready_timeout_s)
            except ProcessStartError as exc:  # died again or never became ready: one more crash
                if not self._stopping.is_set():
                    log.error("%s did not come back: %s", process.name, exc)
                continue
            self.restarts[process.name] += 1
            log.warning("%s is back (restart %d)", process.name, self.restarts[process.name])
            return True
        return True

    def _relaunch(self, process: Supervised, crash: int) -> bool:
        with self._spawn:
            if self._stopping.is_set():
                return False
            process.stop()  # reaps what the dead process left in its group (Triton's stubs)
            log_file = Path(process.log_file)
            if log_file.exists():  # keep the crashed run's log beside the new one
                log_file.replace(log_file.with_name(f"{log_file.name}.crash{crash}"))
            process.start()
            return True
