"""min_tokens with the scheduler's fake engine: EOS and stop strings held back until min_tokens tokens exist."""
from __future__ import annotations

import pytest

from runtime.errors import ClientError
from runtime.llm.protocol import SamplingParams
from runtime.llm.scheduler import Scheduler
from tests.unit.test_llm_scheduler import EOT, V, VOCAB, FakeEngine, ListSink, job


def run(*jobs_args: tuple[list[int], dict]) -> list[ListSink]:
    sched = Scheduler(FakeEngine(), VOCAB, max_batch_size=4)
    sinks = []
    for prompt, sampling in jobs_args:
        sinks.append(ListSink())
        sched.submit(job(prompt, sinks[-1], **sampling))
    sched.run_until_idle()
    return sinks


def test_eos_is_banned_until_min_tokens():
    # The fake engine continues 17 -> 18 ("s") -> 19 (EOT): without min_tokens one token, then stop.
    plain, held, n2 = run(([17], {}), ([17], {"min_tokens": 3}), ([17], {"min_tokens": 2, "n": 2}))
    assert plain.choices() == {0: ("s", "stop")}
    # EOT banned on samples 2..3: the argmax falls to token 0 ("a"), and the engine counts on from there
    assert held.choices() == {0: ("sabcdefghijklmnopqrs", "stop")}
    assert held.responses[-1]["usage"]["completion_tokens"] == 21  # 20 letters + the EOT that ended it
    assert n2.choices() == {i: ("sabcdefghijklmnopqrs", "stop") for i in range(2)}


def test_stop_strings_count_only_from_the_min_tokens_th_token():
    early, late = run(([0], {"stop": ["bc"], "min_tokens": 4}), ([0], {"stop": ["fg"], "min_tokens": 2}))
    assert early.choices() == {0: ("bcdefghijklmnopqrs", "stop")}  # "bc" came before min_tokens: emitted
    assert late.choices() == {0: ("bcde", "stop")}


def test_min_tokens_with_greedy_logprobs_and_ignore_eos():
    logprobs, ignore = run(([17], {"min_tokens": 2, "logprobs": True, "max_tokens": 3}),
                           ([17], {"min_tokens": 2, "ignore_eos": True, "max_tokens": 3}))
    entries = [e for r in logprobs.responses for c in r["choices"] for e in (c["logprobs"] or {}).get("content", [])]
    assert [e["token"] for e in entries] == ["s", "a", "b"] and entries[1]["logprob"] < 0
    assert ignore.choices() == {0: ("sa", "length")}  # ignore_eos: the EOT is sampled and adds no text


def test_min_tokens_above_max_tokens_is_a_client_error():
    with pytest.raises(ClientError) as err:
        SamplingParams.from_json({"min_tokens": 5, "max_tokens": 4}, V)
    assert err.value.param == "min_tokens" and "5" in err.value.message and "4" in err.value.message
    with pytest.raises(ClientError):
        SamplingParams.from_json({"min_tokens": -1}, V)
    assert SamplingParams.from_json({"min_tokens": 9}, V).min_tokens == 9  # no max_tokens: checked by length only
    assert EOT == V - 1
