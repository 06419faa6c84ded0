"""The launcher's wait for SIGINT/SIGTERM (launcher/__main__.py `_wait_for_signal`), in a child process.

Python runs a signal handler again, nested, when a second signal lands while the first handler runs. A handler
that sets a threading.Event takes the event's lock, so a second SIGTERM during that set would deadlock the
launcher (SIGTERM sent to its process group twice does it). The probe below makes the second signal land exactly there.

The child says "waiting" from inside the wait, once the handlers are installed: a signal sent before that would
take Python's default action and kill the child, which on a busy machine (the parent is quicker than the child's
next line) looked like a hang or a crash of the code under test."""
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.timing import scaled

ROOT = Path(__file__).resolve().parents[2]

WAITER = """
import os, signal, sys, threading, time
from launcher.__main__ import _wait_for_signal

class SaysWaiting(threading.Event):
    said = False

    def wait(self, timeout=None):  # first called after _wait_for_signal installed its handlers
        if not self.said:
            self.said = True
            print("waiting", flush=True)
        return super().wait(timeout)

class SecondSignalInsideSet(SaysWaiting):
    def set(self):  # a second SIGTERM arrives while the event's lock is held
        with self._cond:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            self._flag = True
            self._cond.notify_all()

stop = SecondSignalInsideSet() if sys.argv[1] == "probe" else SaysWaiting()
if sys.argv[1] == "supervisor":  # someone else ends the wait (the supervisor giving up)
    threading.Timer(0.2, threading.Event.set, (stop,)).start()
_wait_for_signal(stop)
print("stopped", flush=True)
"""


def _run(mode: str, send: signal.Signals | None, times: int = 1) -> tuple[str, float]:
    proc = subprocess.Popen([sys.executable, "-c", WAITER, mode], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "waiting"
        start = time.monotonic()
        for _ in range(times if send is not None else 0):
            proc.send_signal(send)
        out, _ = proc.communicate(timeout=scaled(10))
        return out.strip(), time.monotonic() - start
    finally:
        proc.kill()


def test_a_second_sigterm_inside_the_first_does_not_hang_it():
    out, _ = _run("probe", signal.SIGTERM, times=2)  # timed out (a deadlock) before the fix
    assert out == "stopped"


def test_one_sigint_stops_it_at_once():
    out, took = _run("plain", signal.SIGINT)
    assert out == "stopped" and took < scaled(2.0)


def test_the_supervisor_giving_up_stops_it():
    out, took = _run("supervisor", None)
    assert out == "stopped" and took < scaled(2.0)
