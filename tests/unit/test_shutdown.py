"""runtime.shutdown in a real child process: SIGTERM runs the callback in a thread while the main thread is
blocked outside Python (as the stub's is), and the process skips the interpreter teardown at exit."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

CHILD = """
import sys, threading, time
from runtime import shutdown
done = threading.Event()
print(shutdown.on_termination(lambda: (print("callback in", threading.current_thread().name, flush=True),
                                       done.set())), flush=True)
import atexit; atexit.register(lambda: print("teardown handler ran", flush=True))  # registered before: skipped
shutdown.skip_interpreter_teardown()
print("armed", flush=True)
done.wait()  # the main thread blocks in C, like the stub waiting for Triton's next message
print("main thread done", flush=True)
"""


def test_sigterm_runs_the_callback_and_exit_skips_teardown():
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "True" and child.stdout.readline().strip() == "armed"
    time.sleep(0.2)
    child.send_signal(signal.SIGTERM)
    out, _ = child.communicate(timeout=30)
    assert child.returncode == 0  # the signal is otherwise ignored, as the stub ignores it
    assert "callback in termination-watch" in out and "main thread done" in out
    assert "teardown handler ran" not in out  # exit_process ran first (last registered) and ended the process


def test_a_test_run_keeps_its_failure_status_after_a_model_armed_the_exit_hook(tmp_path):
    """Unit tests run models' initialize() in-process, which registers the stub's exit hook (status 0 at exit):
    tests/conftest.py unregisters it at session end, or a failing suite would exit 0 and CI would pass it."""
    from pathlib import Path
    (tmp_path / "test_armed.py").write_text("from runtime import shutdown\n\n\ndef test_fails():\n"
                                            "    shutdown.skip_interpreter_teardown()\n    assert False\n")
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
                          str(tmp_path / "test_armed.py")], cwd=root, capture_output=True, text=True, timeout=120)
    assert "1 failed" in run.stdout and run.returncode == 1, run.stdout[-2000:]
