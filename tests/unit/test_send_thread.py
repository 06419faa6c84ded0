"""The LLM model's send thread: a stream's first response inline, the rest in order on one thread; a failed
later send marks the sink cancelled instead of stalling or killing the engine loop."""
from __future__ import annotations

import threading

import pytest

from runtime.llm.send_thread import SendThread, ThreadedSink


class RecordingSink(ThreadedSink):
    def __init__(self, sends: SendThread, fail_at: int | None = None):
        super().__init__(sends)
        self.sent: list[tuple[str, bool, str]] = []  # (payload, final, thread name)
        self.fail_at, self.triton_cancelled = fail_at, False

    def deliver(self, payload, final):
        if self.fail_at is not None and len(self.sent) >= self.fail_at:
            raise RuntimeError("Unable to send response: the request was cancelled")
        self.sent.append((payload, final, threading.current_thread().name))

    def deliver_error(self, error):
        self.sent.append((f"error: {error}", True, threading.current_thread().name))

    def deliver_close(self):
        raise RuntimeError("Response sender has been closed")  # after a final flag Triton refuses another

    def is_cancelled(self):
        return self.triton_cancelled


@pytest.fixture
def sends():
    thread = SendThread("test-sender")
    yield thread
    assert thread.close(5.0)


def test_first_response_inline_the_rest_in_order_on_the_send_thread(sends):
    sink = RecordingSink(sends)
    for i in range(50):
        sink.send(str(i), final=i == 49)
    sink.close()  # its error (already closed) is swallowed
    assert sends.close(5.0)
    assert [p for p, _, _ in sink.sent] == [str(i) for i in range(50)]
    assert [f for _, f, _ in sink.sent] == [False] * 49 + [True]
    assert sink.sent[0][2] == threading.current_thread().name and {t for _, _, t in sink.sent[1:]} == {"test-sender"}
    assert not sink.cancelled()


def test_a_failed_first_send_raises_in_the_caller(sends):
    with pytest.raises(RuntimeError):
        RecordingSink(sends, fail_at=0).send("0", final=False)  # the scheduler drops the job at once


def test_a_failed_later_send_marks_the_sink_cancelled_and_others_go_on(sends):
    gone, other = RecordingSink(sends, fail_at=2), RecordingSink(sends)
    for i in range(4):
        gone.send(str(i), final=False)
        other.send(str(i), final=False)
    gone.fail(RuntimeError("stopping"))
    assert sends.close(5.0)
    assert gone.cancelled() and [p for p, _, _ in gone.sent] == ["0", "1", "error: stopping"]
    assert not other.cancelled() and [p for p, _, _ in other.sent] == ["0", "1", "2", "3"]


def test_cancelled_asks_triton_when_nothing_failed(sends):
    sink = RecordingSink(sends)
    sink.triton_cancelled = True
    assert sink.cancelled()
