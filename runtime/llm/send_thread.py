"""Responses go out from one thread of their own, in order, so the engine loop never waits on Triton.

A Python-backend send is a round trip to the server process (pb_stub's ResponseSender::Send waits until the
server has taken the response); issued from the scheduler's thread, every send stalled the next decode step: a
sixth of the loop's time streaming at 32 clients on 2 cores. One FIFO thread keeps each stream's responses in
order (the final flag last) while the loop decodes; sends release the GIL, so they overlap the engine's run.
A stream's first response still goes out inline: it is the time to first token, and a failure there drops the
job at once. A later send that fails (the client is gone) marks the sink cancelled; the scheduler drops that job
at its next cancellation sweep.
"""
from __future__ import annotations

import logging
import queue
import threading
from typing import Callable

log = logging.getLogger(__name__)


class SendThread:
    def __init__(self, name: str = "llm-sender"):
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def post(self, send: Callable[[], None], on_error: Callable[[BaseException], None]) -> None:
        """Run `send` after every send posted before it; `on_error(exc)` (in the thread) if it raises."""
        self._queue.put(lambda: _guarded(send, on_error))

    def close(self, timeout: float) -> bool:
        """Send what is queued, then end the thread; False if that took longer than `timeout`."""
        self._queue.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while (task := self._queue.get()) is not None:
            task()


def _guarded(send: Callable[[], None], on_error: Callable[[BaseException], None]) -> None:
    try:
        send()
    except Exception as exc:  # noqa: BLE001  (one stream's failure must not end the others')
        try:
            on_error(exc)
        except Exception:  # noqa: BLE001
            log.exception("response error handler failed")


class ThreadedSink:
    """A ResponseSink (runtime.llm.sequence) whose sends after the first run on a SendThread. Subclasses
    implement the blocking calls: deliver, deliver_error, deliver_close, is_cancelled."""

    def __init__(self, sends: SendThread):
        self.sends = sends
        self.failed = False
        self._first = True

    def send(self, payload: str, final: bool) -> None:
        if self._first:
            self._first = False
            self.deliver(payload, final)
        else:
            self.sends.post(lambda: self.deliver(payload, final), self._on_error)

    def fail(self, error: BaseException) -> None:
        self.sends.post(lambda: self.deliver_error(error), self._on_error)

    def close(self) -> None:
        self.sends.post(self.deliver_close, lambda exc: None)  # a stream closed already on Triton's side

    def cancelled(self) -> bool:
        return self.failed or self.is_cancelled()

    def _on_error(self, exc: BaseException) -> None:
        self.failed = True
        log.info("a response could not be sent (the client is gone?): %s", exc)

    # -- the blocking calls ---------------------------------------------------------------------------------
    def deliver(self, payload: str, final: bool) -> None:
        raise NotImplementedError

    def deliver_error(self, error: BaseException) -> None:
        raise NotImplementedError

    def deliver_close(self) -> None:
        raise NotImplementedError

    def is_cancelled(self) -> bool:
        raise NotImplementedError
