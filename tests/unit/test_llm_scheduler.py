"""Continuous batching with a fake engine: joins between steps, leaves when done or cancelled, batch limits,
n choices, finish reasons, usage and the response stream contract."""
from __future__ import annotations

import json

import numpy as np

from runtime.llm.coalesce import StreamInterval
from runtime.llm.protocol import SamplingParams
from runtime.llm.scheduler import Scheduler
from runtime.llm.sequence import Job, Vocab
from runtime.llm.session import EngineSession
from runtime.llm.tokenizer import Prompt
from tests.integration.hardening_support import wait_for

V = 20
EOT = V - 1
VOCAB = Vocab([bytes([ord("a") + i]) for i in range(V - 1)] + [b"<|eot_id|>"], frozenset({EOT}), frozenset({EOT}))


class FakeEngine(EngineSession):
    """Next token = last token + 1 (so a prompt ending in token t continues t+1, t+2, ... up to EOT); keeps each
    slot's cached tokens to check what the scheduler reuses and copies."""

    vocab_size = V
    slots = 64

    def __init__(self):
        self.cache: dict[int, list[int]] = {}
        self.decode_sizes: list[int] = []
        self.prefills: list[tuple[int, int, int]] = []  # (slot, start, tokens)

    def _logits(self, slots):
        out = np.zeros((len(slots), V), np.float32)
        for r, s in enumerate(slots):
            out[r, (self.cache[s][-1] + 1) % V] = 10.0
        return out

    def prefill(self, slot, tokens, start=0, logits=True):
        assert self.cache.get(slot, [])[:start] == list(tokens[:start]), "reused positions hold the prompt's prefix"
        self.cache[slot] = list(tokens)
        self.prefills.append((slot, start, len(tokens)))
        return self._logits([slot])[0] if logits else None

    def decode(self, slots, tokens):
        assert len(set(slots)) == len(slots)
        for slot, token in zip(slots, tokens):
            self.cache[slot].append(token)
        self.decode_sizes.append(len(slots))
        return self._logits(slots)

    def copy(self, source, targets, length):
        for t in targets:
            self.cache[t] = self.cache[source][:length]


class ListSink:
    def __init__(self, cancel_after: int | None = None):
        self.responses: list[dict] = []
        self.finals = 0
        self.closed = False
        self.cancel_after = cancel_after

    def send(self, payload, final):
        assert self.finals == 0, "response after the final flag"
        self.responses.append(json.loads(payload))
        self.finals += final

    def fail(self, error):
        raise AssertionError(f"unexpected failure: {error}")

    def cancelled(self):
        return self.cancel_after is not None and len(self.responses) >= self.cancel_after

    def close(self):
        self.closed = True

    def choices(self) -> dict[int, tuple[str, str]]:
        out: dict[int, tuple[str, str]] = {}
        for r in self.responses:
            for c in r["choices"]:
                text, reason = out.get(c["index"], ("", None))
                assert reason is None, "choice ended twice"
                out[c["index"]] = (text + c["text"], c["finish_reason"])
        return out


def job(prompt: list[int], sink: ListSink, max_model_len: int = 64, echo: bool = False, stream: bool = True,
        **sampling) -> Job:
    params = SamplingParams.from_json({"temperature": 0, **sampling}, V)
    return Job(Prompt(prompt, "PROMPT"), params, VOCAB, sink, max_model_len, echo, stream)


def test_jobs_join_between_steps_and_leave_when_done():
    engine = FakeEngine()
    sched = Scheduler(engine, VOCAB, max_batch_size=4)
    first, second = ListSink(), ListSink()
    sched.submit(job([0], first))
    sched.step()
    sched.step()
    sched.submit(job([10], second))  # joins the running batch
    sched.run_until_idle()
    assert first.choices() == {0: ("bcdefghijklmnopqrs", "stop")}  # ends on <|eot_id|>, which adds no text
    assert second.choices() == {0: ("lmnopqrs", "stop")}
    assert first.finals == second.finals == 1
    assert first.responses[-1]["usage"] == {"prompt_tokens": 1, "completion_tokens": 19, "cached_tokens": 0}
    assert 2 in engine.decode_sizes and sched.slots.available() == 4


def test_batch_size_limit_queues_the_rest():
    engine = FakeEngine()
    sched = Scheduler(engine, VOCAB, max_batch_size=2)
    sinks = [ListSink() for _ in range(5)]
    for i, sink in enumerate(sinks):
        sched.submit(job([i], sink, max_tokens=3))
    sched.run_until_idle()
    assert max(engine.decode_sizes) == 2
    assert all(s.choices()[0][1] == "length" and s.responses[-1]["usage"]["completion_tokens"] == 3 for s in sinks)


def test_n_choices_share_the_prompt_and_each_ends_once():
    engine = FakeEngine()
    sched = Scheduler(engine, VOCAB, max_batch_size=4)
    sink = ListSink()
    sched.submit(job([5], sink, n=3, max_tokens=4))
    sched.run_until_idle()
    assert sink.choices() == {i: ("ghij", "length") for i in range(3)}
    assert sink.responses[-1]["usage"] == {"prompt_tokens": 1, "completion_tokens": 12, "cached_tokens": 0}
    assert max(engine.decode_sizes) == 3


def test_cancelled_job_leaves_and_frees_its_slot():
    engine = FakeEngine()
    sched = Scheduler(engine, VOCAB, max_batch_size=1, cancel_check_s=0.0)
    gone, later = ListSink(cancel_after=2), ListSink()
    sched.submit(job([0], gone, ignore_eos=True))
    sched.submit(job([3], later, max_tokens=2))
    sched.run_until_idle()
    assert gone.closed and gone.finals == 0 and len(gone.responses) == 2
    assert later.choices() == {0: ("ef", "length")}


def test_stop_strings_max_tokens_ignore_eos_and_echo():
    sched = Scheduler(FakeEngine(), VOCAB, max_batch_size=4)
    stop, eos, echo = ListSink(), ListSink(), ListSink()
    sched.submit(job([0], stop, stop=["def", "zz"]))
    sched.submit(job([17], eos, ignore_eos=True, max_tokens=4))
    sched.submit(job([0], echo, echo=True, max_tokens=4))
    sched.run_until_idle()
    assert stop.choices() == {0: ("bc", "stop")}
    assert eos.choices() == {0: ("sab", "length")}  # <|eot_id|> adds no text and does not stop
    assert echo.responses[0]["prompt_text"] == "PROMPT" and "prompt_text" not in echo.responses[-1]


def test_default_max_tokens_is_the_rest_of_the_context():
    sink = ListSink()
    sched = Scheduler(FakeEngine(), VOCAB, max_batch_size=1)
    sched.submit(job([0, 0, 0], sink, max_model_len=8, ignore_eos=True))
    sched.run_until_idle()
    assert sink.choices()[0][1] == "length" and sink.responses[-1]["usage"]["completion_tokens"] == 5


def test_coalescing_window_first_response_at_once_then_merged_deltas_same_text():
    """A window longer than the run: the first tokens go out at once, the rest in the final response; a
    count limit sends every 3 tokens; a non-streaming job gets one response; the text never changes."""
    hour, runs = StreamInterval(3600.0), {}
    for name, interval, stream in (("every step", StreamInterval(), True), ("window", hour, True),
                                   ("count", StreamInterval(3600.0, 3), True), ("one", hour, False)):
        sched = Scheduler(FakeEngine(), VOCAB, max_batch_size=4, interval=interval)
        sink = runs[name] = ListSink()
        sched.submit(job([0], sink, max_tokens=10, stream=stream))
        sched.run_until_idle()
        assert sink.finals == 1 and sink.choices() == {0: ("bcdefghijk", "length")}
    counts = {k: [r["usage"]["completion_tokens"] for r in sink.responses] for k, sink in runs.items()}
    assert counts == {"every step": list(range(1, 11)), "window": [1, 10], "count": [1, 4, 7, 10], "one": [10]}


def test_waiting_job_cancelled_before_admission_is_closed_unprefilled():
    engine = FakeEngine()
    sched = Scheduler(engine, VOCAB, max_batch_size=1, cancel_check_s=0.0)  # every wait is long enough to check
    running, gone, later = ListSink(), ListSink(cancel_after=0), ListSink()
    for prompt, sink in (([0], running), ([5], gone), ([3], later)):
        sched.submit(job(prompt, sink, max_tokens=2))
    sched.run_until_idle()
    assert gone.closed and gone.responses == [] and later.choices() == {0: ("ef", "length")}


class CountingSink(ListSink):
    def __init__(self):
        super().__init__()
        self.checks = 0

    def cancelled(self):
        self.checks += 1
        return False


def test_fresh_job_is_admitted_without_a_cancellation_check_and_idle_submit_says_so():
    """The check is an IPC call in Triton: a job submitted a moment ago skips it (time to first token)."""
    sched = Scheduler(FakeEngine(), VOCAB, max_batch_size=4, cancel_check_s=60.0)
    first, second = CountingSink(), CountingSink()
    jobs = [job([0], first, max_tokens=8), job([5], second, max_tokens=8)]
    assert sched.submit(jobs[0]) is True  # idle: its prefill starts at once
    assert sched.submit(jobs[1]) is False
    assert not jobs[0].started.is_set()
    sched.step()
    assert first.checks == second.checks == 0 and len(sched.running) == 2
    assert all(j.started.is_set() for j in jobs)  # what Generator.submit(wait_first_s=...) waits for


def test_a_failed_prefill_fails_its_job_and_the_loop_serves_on():
    """A job taken off the queue whose prefill fails gets the error (it hung before: it was in neither list)."""
    class FailingOnce(FakeEngine):
        failed = False

        def prefill(self, slot, tokens, start=0, logits=True):
            if not self.failed:
                self.failed = True
                raise RuntimeError("device lost")
            return super().prefill(slot, tokens, start, logits)

    class FailSink(ListSink):
        error = None

        def fail(self, error):
            self.error = error

    sched = Scheduler(FailingOnce(), VOCAB, max_batch_size=2)
    sched.start()
    try:
        broken, fine = FailSink(), ListSink()
        sched.submit(job([0], broken, max_tokens=3))
        wait_for(lambda: broken.error is not None, 10, "the failed job's error")
        assert "device lost" in str(broken.error) and broken.responses == [] and broken.finals == 0
        sched.submit(job([3], fine, max_tokens=3))
        wait_for(lambda: fine.finals == 1, 10, "the next job's last response")
        assert fine.choices() == {0: ("efg", "length")}
    finally:
        sched.stop()



# -- prefix reuse (runtime/llm/slot_table.py) ---------------------------------------------------------------
SHARED = [1 + i % 17 for i in range(40)]  # 40 tokens: two whole 16-token blocks reusable


def _prefix_run(prefix_caching: bool, together: bool):
    engine = FakeEngine()
    sched = Scheduler(engine, VOCAB, max_batch_size=4, prefix_caching=prefix_caching)
    first, second = ListSink(), ListSink()
    sched.submit(job(SHARED + [2], first, max_tokens=5))
    if not together:
        sched.run_until_idle()
    sched.submit(job(SHARED + [7], second, max_tokens=5, n=2))
    sched.run_until_idle()
    return engine, sched, first, second


def test_a_prompt_prefills_only_what_follows_a_cached_prefix():
    for together in (False, True):  # the source idle (finished) or running beside it
        engine, sched, first, second = _prefix_run(True, together)
        assert [start for _, start, _ in engine.prefills] == [0, 32]
        _, _, plain_first, plain_second = _prefix_run(False, together)
        assert (first.choices(), second.choices()) == (plain_first.choices(), plain_second.choices())
        assert sched.slots.stats.hits == 1 and sched.slots.stats.reused_tokens == 32


def test_prefix_caching_off_prefills_everything():
    engine, sched, _, _ = _prefix_run(False, False)
    assert [start for _, start, _ in engine.prefills] == [0, 0] and sched.slots.stats.hits == 0


def test_a_conversation_reuses_its_cache_after_unrelated_requests():
    """One request at a time (c=1): the next turn of a conversation finds its history although other requests
    ran in between, the idle slots being an LRU rather than slot 0 taken again each time."""
    engine = FakeEngine()
    sched = Scheduler(engine, VOCAB, max_batch_size=4, prefix_caching=True)
    first = ListSink()
    sched.submit(job(SHARED + [2], first, max_tokens=3))
    sched.run_until_idle()
    for i in range(2):  # unrelated prompts
        sched.submit(job([5 + i] * 20, ListSink(), max_tokens=3))
        sched.run_until_idle()
    reply = [3, 4, 5]  # what the first turn generated: next token = last + 1
    assert first.choices()[0][0] == "".join(VOCAB.token_bytes[t].decode() for t in reply)
    sched.submit(job(SHARED + [2] + reply + [9, 9, 9, 9], ListSink(), max_tokens=3))
    sched.run_until_idle()
    slot, start, _ = engine.prefills[-1]
    assert start == 32 and slot == engine.prefills[0][0]  # in place, in the first turn's slot
    assert sched.slots.stats.hits == 1
