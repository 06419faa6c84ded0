"""Prompt shutdown of a Python-backend model process (the stub), without pb_utils.

Two things keep Triton from stopping soon after SIGTERM when a model generates in the background:
- Triton releases a decoupled request as soon as execute() returns, so at shutdown it sees no in-flight inference
  and starts unloading at once; the Python backend then waits for the responses the model is still sending before
  it calls finalize(). A generation that runs on (up to the whole context window) holds the unload, and Triton's
  exit, until it ends. The stub ignores SIGTERM, but it receives it: the launcher signals Triton's whole process
  group. `on_termination` runs a callback in a thread when the signal arrives, so the model can end its
  generations right away (their clients get an error; nothing new is accepted by then).
- After finalize(), the stub's interpreter tears every module down; with torch imported (transformers imports
  it) that alone takes 2-4 s on a busy CPU. `skip_interpreter_teardown` ends the process from an atexit hook, after
  the stub has finished its own cleanup and answered Triton, so only the module teardown is skipped; a model with
  background threads calls `exit_process` at the end of finalize() instead.
"""
from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
from typing import Callable

log = logging.getLogger(__name__)
TERMINATION = (signal.SIGTERM, signal.SIGINT)


def on_termination(callback: Callable[[], None]) -> bool:
    """Call `callback` (in a thread) on the first SIGTERM/SIGINT; False where it cannot be armed (not the main
    thread). The signals stay otherwise ignored, as the stub has them."""
    if threading.current_thread() is not threading.main_thread():
        return False
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    for sig in TERMINATION:  # the C-level handler writes the signal number to the wakeup fd at once, even while
        signal.signal(sig, lambda *_: None)  # the main thread waits in C++ for Triton's next message
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)

    def watch() -> None:
        while not any(sig in os.read(read_fd, 64) for sig in TERMINATION):
            pass
        log.info("termination signal: ending in-flight work")
        callback()

    threading.Thread(target=watch, name="termination-watch", daemon=True).start()
    return True


def exit_process() -> None:
    """End this model process now. From finalize() this is safe: the stub has already sent Triton its answer to
    the finalize request, and Triton only waits for the process to exit. It also skips the stub's own cleanup,
    which can hang when a background thread is still blocked sending a response to a server that stopped
    serving them."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def skip_interpreter_teardown() -> None:
    """At interpreter exit (atexit runs last-registered first, so register after the heavy imports), exit the
    process without tearing the modules down."""
    atexit.register(exit_process)
