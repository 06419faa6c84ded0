"""The supervisor with real child processes (sh + sleep): restart after SIGKILL, give up after K crashes."""
from __future__ import annotations

import logging
import os
import signal
import time

from launcher.process import ManagedProcess
from launcher.supervisor import CrashWindow, RestartPolicy, Supervisor, describe_exit

FAST = RestartPolicy(max_crashes=3, window_s=60, backoff_s=0.05, max_backoff_s=0.2, ready_timeout_s=10)


class Sleeper(ManagedProcess):
    name = "sleeper"

    def __init__(self, log_file):
        super().__init__(["sh", "-c", "echo sleeper up; exec sleep 600"], log_file)

    def wait_ready(self, timeout: float) -> None:
        self.wait_until(lambda: self.log_file.exists() and "up" in self.log_file.read_text(), timeout)


def _wait(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _started(tmp_path) -> tuple[Sleeper, Supervisor]:
    proc = Sleeper(tmp_path / "sleeper.log")
    proc.start()
    proc.wait_ready(10)
    return proc, Supervisor([proc], FAST, poll_s=0.02).start()


def test_sigkilled_process_is_restarted_with_its_exit_status_and_log_tail(tmp_path, caplog):
    proc, supervisor = _started(tmp_path)
    first = proc.proc.pid
    with caplog.at_level(logging.INFO, logger="launcher.supervisor"):
        os.kill(first, signal.SIGKILL)
        _wait(lambda: supervisor.restarts["sleeper"] == 1)
    try:
        assert proc.running and proc.proc.pid != first
        assert "sleeper killed by SIGKILL (crash 1" in caplog.text and "sleeper up" in caplog.text
        assert (tmp_path / "sleeper.log.crash1").exists() and not supervisor.done.is_set()
    finally:
        supervisor.stop()
        proc.stop()
    supervisor.join()
    assert supervisor.failure is None


def test_gives_up_after_k_crashes_in_the_window(tmp_path):
    proc, supervisor = _started(tmp_path)
    try:
        for crash in range(FAST.max_crashes):
            if crash:
                _wait(lambda: supervisor.restarts["sleeper"] == crash)
            _wait(lambda: proc.running)
            os.kill(proc.proc.pid, signal.SIGKILL)
        assert supervisor.done.wait(10)
        assert "3 crashes within 60 s" in supervisor.failure and "SIGKILL" in supervisor.failure
        time.sleep(0.2)
        assert not proc.running and supervisor.restarts["sleeper"] == FAST.max_crashes - 1
    finally:
        supervisor.stop()
        proc.stop()


def test_exits_after_stop_are_not_crashes(tmp_path):
    proc, supervisor = _started(tmp_path)
    supervisor.stop()
    proc.stop()
    supervisor.join()
    assert supervisor.restarts["sleeper"] == 0 and supervisor.failure is None and not proc.running


def test_crash_window_forgets_old_crashes_and_backoff_doubles():
    now = [0.0]
    window = CrashWindow(10.0, clock=lambda: now[0])
    assert [window.record(), window.record()] == [1, 2]
    now[0] = 11.0
    assert window.record() == 1
    policy = RestartPolicy(backoff_s=1.0, max_backoff_s=5.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    assert describe_exit(-9) == "killed by SIGKILL" and describe_exit(3) == "exited with code 3"
