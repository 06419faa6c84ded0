"""Sampling: greedy, temperature/top_p/top_k with seeds, penalties, logit_bias, logprobs; request checks; the same
tokens as the plain full-vocabulary sampler (bench/reference_sampler.py) at the same seed on fixed 128,256-wide
logits."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from runtime.errors import ClientError
from runtime.llm.protocol import GenerationRequest, SamplingParams
from bench import reference_sampler
from runtime.llm.sampling import Sampler, nucleus, sample, sample_rows
from runtime.llm.tokenizer import check_length

V = 50
LOGITS = np.linspace(-2.0, 3.0, V).astype(np.float32)  # token 49 is the best, 48 next


def params(**kw) -> SamplingParams:
    return SamplingParams.from_json(kw, V)


# The CPU path (numpy) and the device path (torch, run here on the CPU): the same tests for both.
BACKENDS = {"numpy": np.asarray, "torch": torch.from_numpy}


@pytest.fixture(params=BACKENDS)
def to(request):
    return BACKENDS[request.param]


def draw(p: SamplingParams, to, steps: int = 30, index: int = 0) -> list[int]:
    sampler = Sampler(p, V, index)
    return [sample_rows(to(LOGITS[None].copy()), [sampler])[0].token_id for _ in range(steps)]


def test_greedy_takes_the_argmax(to):
    assert draw(params(temperature=0), to, 3) == [49, 49, 49]


def test_same_seed_same_tokens_and_choices_differ(to):
    p = params(temperature=1.0, seed=7)
    assert draw(p, to) == draw(p, to)
    assert draw(p, to, index=0) != draw(p, to, index=1)
    assert len(set(draw(p, to))) > 3


def test_top_p_keeps_the_smallest_nucleus(to):
    probs = np.array([0.15, 0.5, 0.05, 0.3])
    ids, kept = nucleus(probs, np.array([1.0]), 0.75, 0)
    assert ids.tolist() == [1, 3] and kept.tolist() == [0.5, 0.3]
    probs = probs[[1, 3, 0, 2]]
    ids, kept = nucleus(probs, np.array([1.0]), 0.75, 0)
    assert ids.tolist() == [0, 1] and kept.tolist() == [0.5, 0.3]
    assert set(draw(params(temperature=1.0, top_p=0.05, seed=1), to, 40)) == {49}


def test_logit_bias_bans_and_forces(to):
    assert set(draw(params(temperature=0, logit_bias={"49": -100}), to, 3)) == {48}
    assert set(draw(params(temperature=1.0, seed=3, logit_bias={"5": 100}), to, 20)) == {5}
    banned = draw(params(temperature=2.0, seed=3, logit_bias={str(t): -100 for t in range(40, 50)}), to, 200)
    assert not set(banned) & set(range(40, 50))


def test_penalties_push_away_from_repeats(to):
    assert draw(params(temperature=0, frequency_penalty=2.0), to, 3) == [49, 48, 47]
    # presence penalty subtracts once per seen token: 49 drops below 48 only after being seen
    assert draw(params(temperature=0, presence_penalty=0.2), to, 3)[:2] == [49, 48]


def test_logprobs_are_log_softmax_with_sorted_top_entries(to):
    sampler = Sampler(params(temperature=0, logprobs=True, top_logprobs=3), V)
    sampled = sample_rows(to(LOGITS[None].copy()), [sampler])[0]
    expected = reference_sampler.log_softmax(LOGITS)
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


def test_top_k_keeps_the_k_best_then_top_p(to):
    assert set(draw(params(temperature=2.0, seed=5, top_k=1), to, 20)) == {49}
    assert set(draw(params(temperature=2.0, seed=5, top_k=3), to, 200)) == {47, 48, 49}
    assert set(draw(params(temperature=2.0, seed=5, top_k=3, top_p=0.4), to, 100)) == {48, 49}
    assert len(set(draw(params(temperature=2.0, seed=5, top_k=V + 10), to, 300))) > 20  # k past the vocabulary: all
    with pytest.raises(ClientError) as err:
        params(top_k=-1)
    assert err.value.param == "top_k"


# -- the same tokens as the reference sampler ----------------------------------------------------------------
WIDE = 128256
CONFIGS = {
    "temperature 1": dict(temperature=1.0),
    "temperature 0.7": dict(temperature=0.7),
    "top_p 0.9": dict(temperature=0.8, top_p=0.9),
    "top_p 0.5, temperature 1.3": dict(temperature=1.3, top_p=0.5),
    "penalties": dict(temperature=1.0, presence_penalty=0.7, frequency_penalty=0.4),
    "greedy + penalties + bias": dict(temperature=0.0, frequency_penalty=1.5, logit_bias={"7": 3.0, "9": -100}),
    "bias + top_p + logprobs": dict(temperature=0.9, top_p=0.95, logit_bias={"11": 5.0}, logprobs=True,
                                    top_logprobs=5),
}


@pytest.fixture(scope="module")
def fixed_logits() -> np.ndarray:
    """Six rows of next-token logits over 128,256 ids, from near-flat (std 1) to peaked (std 8), fixed by a seed."""
    rng = np.random.default_rng(2026)
    return (rng.standard_normal((6, WIDE)) * np.array([[1], [2], [3], [5], [6], [8]])).astype(np.float32)


_REFERENCE: dict[tuple[str, bool], list[list]] = {}  # the reference's draws, shared by both backends


def compare(name: str, rows_of_step, exact: bool, to, steps: int = 8) -> None:
    """Batched sampler vs the reference at the same seed; exact: the reference evaluated in float64."""
    p = SamplingParams.from_json({**CONFIGS[name], "seed": 11, "n": 4}, WIDE)
    new = [Sampler(p, WIDE, i) for i in range(p.n)]
    if (name, exact) not in _REFERENCE:
        ref = [reference_sampler.Sampler(p, WIDE, i) for i in range(p.n)]
        _REFERENCE[name, exact] = [[r.sample(row.astype(np.float64) if exact else row)
                                    for r, row in zip(ref, rows_of_step(step, p.n))] for step in range(steps)]
    for step, want in enumerate(_REFERENCE[name, exact]):
        got = sample_rows(to(rows_of_step(step, p.n).copy()), new)
        assert [g.token_id for g in got] == [w.token_id for w in want], f"step {step}"
        for g, w in zip(got, want):
            assert (g.logprob is None) == (w.logprob is None)
            if w.logprob is not None:
                assert g.logprob == pytest.approx(w.logprob, abs=1e-4)
                assert [t for t, _ in g.top] == [t for t, _ in w.top]


@pytest.mark.parametrize("name", CONFIGS)
def test_same_tokens_as_the_reference_sampler(name, fixed_logits, to):
    """Same RNG stream, same inverse-CDF pick in id order, same top_p nucleus, on flat to peaked rows: equal to the
    reference sampler's algorithm evaluated exactly (its float32 running sum over 128,256 terms drifts by ~1e-4)."""
    compare(name, lambda step, n: fixed_logits[[(step + i) % len(fixed_logits) for i in range(n)]], True, to)


@pytest.mark.parametrize("name", ["temperature 1", "top_p 0.9", "penalties"])
def test_same_tokens_as_the_float32_reference_on_peaked_logits(name, fixed_logits, to):
    compare(name, lambda step, n: fixed_logits[[4 + (step + i) % 2 for i in range(n)]], False, to)


def test_flat_logits_grow_the_candidates_and_agree_with_the_reference(to):
    # three tokens hold ~80% of the mass, 1000 ids far below the first threshold the rest: top_p 0.95 needs them
    flat = np.random.default_rng(3).standard_normal((4, 1000)).astype(np.float32) * 0.1 - 7.2
    flat[:, [5, 50, 500]] = 0.0
    p = SamplingParams.from_json({"temperature": 1.0, "top_p": 0.95, "seed": 3, "n": 4}, 1000)
    new, ref = [Sampler(p, 1000, i) for i in range(4)], [reference_sampler.Sampler(p, 1000, i) for i in range(4)]
    tokens = []
    for _ in range(30):
        tokens += [s.token_id for s in sample_rows(to(flat.copy()), new)]
        assert tokens[-4:] == [r.sample(x).token_id for r, x in zip(ref, flat)]
    assert set(tokens) - {5, 50, 500}  # some draws came from the grown candidate set


def test_a_row_samples_the_same_alone_or_in_a_mixed_batch(fixed_logits, to):
    kinds = [dict(temperature=0), dict(temperature=1.0, seed=1), dict(temperature=0.8, top_p=0.9, seed=2),
             dict(temperature=1.0, top_k=5, seed=3), dict(temperature=0.5, presence_penalty=1.0, seed=4)]
    ps = [SamplingParams.from_json(k, WIDE) for k in kinds]
    batch, alone = [Sampler(p, WIDE) for p in ps], [Sampler(p, WIDE) for p in ps]
    for _ in range(5):
        together = sample_rows(to(fixed_logits[:5].copy()), batch)
        single = [sample(s, row) for s, row in zip(alone, fixed_logits[:5])]
        assert [t.token_id for t in together] == [t.token_id for t in single]
