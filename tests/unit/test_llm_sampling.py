"""Sampling per sequence: greedy, temperature/top_p with seeds, penalties, logit_bias, logprobs; request checks."""
from __future__ import annotations

import numpy as np
import pytest

from runtime.errors import ClientError
from runtime.llm.protocol import GenerationRequest, SamplingParams
from runtime.llm.sampling import Sampler, log_softmax, top_p_filter
from runtime.llm.tokenizer import check_length

V = 50
LOGITS = np.linspace(-2.0, 3.0, V).astype(np.float32)  # token 49 is the best, 48 next


def params(**kw) -> SamplingParams:
    return SamplingParams.from_json(kw, V)


def draw(p: SamplingParams, steps: int = 30, index: int = 0) -> list[int]:
    sampler = Sampler(p, V, index)
    return [sampler.sample(LOGITS).token_id for _ in range(steps)]


def test_greedy_takes_the_argmax():
    assert draw(params(temperature=0), 3) == [49, 49, 49]


def test_same_seed_same_tokens_and_choices_differ():
    p = params(temperature=1.0, seed=7)
    assert draw(p) == draw(p)
    assert draw(p, index=0) != draw(p, index=1)
    assert len(set(draw(p))) > 3


def test_top_p_keeps_the_smallest_nucleus():
    probs = np.array([0.5, 0.3, 0.15, 0.05])
    ids, kept = top_p_filter(probs, 0.75)
    assert ids.tolist() == [0, 1] and kept.tolist() == [0.5, 0.3]
    assert set(draw(params(temperature=1.0, top_p=0.05, seed=1), 40)) == {49}


def test_logit_bias_bans_and_forces():
    assert set(draw(params(temperature=0, logit_bias={"49": -100}), 3)) == {48}
    assert set(draw(params(temperature=1.0, seed=3, logit_bias={"5": 100}), 20)) == {5}
    banned = draw(params(temperature=2.0, seed=3, logit_bias={str(t): -100 for t in range(40, 50)}), 200)
    assert not set(banned) & set(range(40, 50))


def test_penalties_push_away_from_repeats():
    assert draw(params(temperature=0, frequency_penalty=2.0), 3) == [49, 48, 47]
    # presence penalty subtracts once per seen token: 49 drops below 48 only after being seen
    assert draw(params(temperature=0, presence_penalty=0.2), 3)[:2] == [49, 48]


def test_logprobs_are_log_softmax_with_sorted_top_entries():
    sampled = Sampler(params(temperature=0, logprobs=True, top_logprobs=3), V).sample(LOGITS)
    expected = log_softmax(LOGITS)
    assert sampled.token_id == 49 and sampled.logprob == pytest.approx(float(expected[49]))
    assert [t for t, _ in sampled.top] == [49, 48, 47]
    assert np.isclose(np.exp(expected).sum(), 1.0)


@pytest.mark.parametrize("bad, param", [
    ({"temperature": 2.5}, "temperature"), ({"top_p": 0}, "top_p"), ({"n": 0}, "n"), ({"n": 129}, "n"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"), ({"presence_penalty": -3}, "presence_penalty"),
    ({"logit_bias": {"3": 101}}, "logit_bias"), ({"logit_bias": {str(V): 1}}, "logit_bias"),
    ({"logit_bias": {"x": 1}}, "logit_bias"), ({"max_tokens": 0}, "max_tokens"), ({"top_logprobs": 21}, "top_logprobs"),
])
def test_bad_sampling_is_a_client_error(bad, param):
    with pytest.raises(ClientError) as err:
        params(**bad)
    assert err.value.param == param


def test_request_shapes():
    req = GenerationRequest.from_json('{"prompt_token_ids": [1, 2], "sampling": {"max_tokens": null}, "echo": true}', V)
    assert req.prompt_token_ids == [1, 2] and req.echo and req.sampling.max_tokens is None
    for bad in ('{"prompt": "a", "messages": [{"role": "user", "content": "x"}]}', '{"messages": []}',
                '{"prompt_token_ids": [99999]}', "[]", "not json"):
        with pytest.raises(ClientError):
            GenerationRequest.from_json(bad, V)


def test_context_checks_name_both_numbers():
    with pytest.raises(ClientError, match="2048 tokens, but the prompt has 2050"):
        check_length(2050, None, 2048)
    with pytest.raises(ClientError, match="2048 tokens.*2100") as err:
        check_length(100, 2000, 2048)
    assert err.value.param == "max_tokens"
    check_length(100, 1948, 2048)
