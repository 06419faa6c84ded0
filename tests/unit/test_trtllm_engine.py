"""TrtLlmScheduler over a fake of the TensorRT-LLM 1.0 LLM API: streaming responses on the generator contract,
stop strings and client cancellation abort the request inside the engine, engine errors become 400 / 500
answers, and no stream is left open."""
from __future__ import annotations

import json
import threading
import time

import pytest

from runtime.errors import ClientError
from runtime.llm.protocol import GeneratorConfig, SamplingParams
from runtime.llm.sequence import Job
from runtime.llm.tokenizer import Prompt
from runtime.llm.trtllm_engine import TrtLlmScheduler
from tests.unit import fake_trtllm
from tests.unit.fake_trtllm import EOT, V, VOCAB


class Sink:
    def __init__(self, cancel: bool = False):
        self.responses: list[dict] = []
        self.error: BaseException | None = None
        self.closed = False
        self.cancel = cancel
        self.ended = threading.Event()

    def send(self, payload, final):
        assert not self.ended.is_set(), "response after the end of the stream"
        self.responses.append(json.loads(payload))
        if final:
            self.ended.set()

    def fail(self, error):
        self.error = error
        self.ended.set()

    def cancelled(self):
        return self.cancel

    def close(self):
        self.closed = True
        self.ended.set()

    def text(self, index=0):
        return "".join(c["text"] for r in self.responses for c in r["choices"] if c["index"] == index)


@pytest.fixture
def engine(monkeypatch):
    monkeypatch.setenv("TLLM_ALLOW_N_GREEDY_DECODING", "1")
    llm = fake_trtllm.FakeLLM(V, max_seq_len=64)
    sched = TrtLlmScheduler(llm, fake_trtllm.SamplingParams, VOCAB, GeneratorConfig(max_model_len=64, vocab_size=V),
                            EOT, cancel_check_s=0.01, stall_timeout_s=0.5)
    sched.start()
    yield sched
    sched.stop()
    assert llm.shut_down


def run(engine, sink, prompt=(0,), max_model_len=64, **params):
    engine.submit(Job(Prompt(list(prompt), "p"), SamplingParams(**params), VOCAB, sink, max_model_len))
    assert sink.ended.wait(5), "the stream was left open"
    return sink


def test_streams_until_the_end_token(engine):
    sink = run(engine, Sink(), prompt=(14,))  # 15, 16, 17, 18 (<|end_of_text|>: a stop token id), ...
    assert sink.text() == "pqr" and sink.responses[-1]["choices"][-1]["finish_reason"] == "stop"
    assert sink.responses[-1]["usage"] == {"prompt_tokens": 1, "completion_tokens": 4, "cached_tokens": 0}
    inputs, params, streaming = engine.llm.requests[0]
    assert inputs == [14] and streaming and params.stop_token_ids == [18] and params.max_tokens == 63
    assert len(sink.responses) == 4  # one response per engine step


def test_n_choices_and_length(engine):
    sink = run(engine, Sink(), n=2, max_tokens=3, temperature=0.0, ignore_eos=True)
    assert (sink.text(0), sink.text(1)) == ("bcd", "cde")
    assert sink.responses[-1]["usage"]["completion_tokens"] == 6
    assert {c["finish_reason"] for c in sink.responses[-1]["choices"]} == {"length"}


def test_stop_string_aborts_the_request_in_the_engine(engine):
    sink = run(engine, Sink(), stop=["cd"], ignore_eos=True)
    assert sink.text() == "b" and sink.responses[-1]["choices"][-1]["finish_reason"] == "stop"
    assert engine.llm.aborts == 1 and engine.llm.results[0].aborted_by_client


def test_prompt_too_long_for_the_engine_is_a_400(engine):
    sink = run(engine, Sink(), prompt=(0,) * 10, max_model_len=100, max_tokens=60)
    assert isinstance(sink.error, ClientError) and sink.error.code == "context_length_exceeded"


def test_engine_failure_mid_stream_is_a_500_and_aborts(engine):
    engine.llm.fail_at_step = 2
    sink = run(engine, Sink(), ignore_eos=True)
    assert not isinstance(sink.error, ClientError) and "KV cache" in str(sink.error)
    assert engine.llm.aborts == 1


def test_a_stalled_engine_does_not_hang_the_stream(engine):
    engine.llm.stalled = True
    sink = run(engine, Sink())
    assert "sent nothing" in str(sink.error)
    engine.llm.stalled = False


def test_client_cancellation_aborts_inside_the_engine(engine):
    engine.llm.step_delay = 0.02
    sink = run(engine, Sink(cancel=True), ignore_eos=True, max_tokens=50)
    assert sink.closed and sink.error is None
    deadline = time.monotonic() + 2
    while not engine.llm.aborts and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine.llm.aborts == 1


def test_stop_fails_what_is_still_running(monkeypatch):
    llm = fake_trtllm.FakeLLM(V, step_delay=0.05)
    sched = TrtLlmScheduler(llm, fake_trtllm.SamplingParams, VOCAB, GeneratorConfig(max_model_len=64, vocab_size=V),
                            EOT)
    sched.start()
    sink = Sink()
    sched.submit(Job(Prompt([0], "p"), SamplingParams(ignore_eos=True), VOCAB, sink, 64))
    deadline = time.monotonic() + 5
    while not llm.requests and time.monotonic() < deadline:  # in the engine, ~60 steps of 50 ms to go
        time.sleep(0.01)
    sched.stop()
    assert sink.ended.is_set() and "stopped" in str(sink.error) and llm.aborts == 1 and llm.shut_down
