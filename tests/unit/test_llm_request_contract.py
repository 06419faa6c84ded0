"""runtime/llm/protocol.py as the one LLM request contract: the wire form round-trips, validate(config) holds
every rule with its param, GeneratorConfig round-trips through config.pbtxt parameters."""
from __future__ import annotations

import json

import pytest

from runtime.errors import ClientError
from runtime.llm.coalesce import StreamInterval
from runtime.llm.protocol import (MAX_N, MAX_STOP_STRINGS, GenerationRequest, GeneratorConfig, SamplingParams,
                                  parse_logit_bias)

CONFIG = GeneratorConfig(max_model_len=64, vocab_size=100, max_batch_size=8)
HI = [{"role": "user", "content": "hi"}]


def test_request_round_trips_through_its_wire_form():
    sampling = SamplingParams(temperature=0.5, logit_bias={3: -100.0}, seed=7, n=2, max_tokens=9, stop=("x", "y"),
                              min_tokens=1, logprobs=True, top_logprobs=3)
    for request in (GenerationRequest(sampling, messages=HI, tools=[{"type": "function"}],
                                      guide={"type": "json_object"}),
                    GenerationRequest(sampling, prompt="p", echo=True, stream=False),
                    GenerationRequest(SamplingParams(), prompt_token_ids=[1, 2])):
        assert GenerationRequest.from_json(request.to_json()) == request
        request.validate(CONFIG)
    wire = json.loads(GenerationRequest(sampling, prompt="p").to_json())
    assert wire["sampling"]["logit_bias"] == {"3": -100.0} and wire["stream"] is True and "echo" not in wire


@pytest.mark.parametrize("request_, param", [
    (GenerationRequest(SamplingParams(n=MAX_N + 1), messages=HI), "n"),
    (GenerationRequest(SamplingParams(n=CONFIG.max_batch_size + 1), messages=HI), "n"),
    (GenerationRequest(SamplingParams(stop=tuple("abcde"[:MAX_STOP_STRINGS + 1])), messages=HI), "stop"),
    (GenerationRequest(SamplingParams(logit_bias={100: 1.0}), messages=HI), "logit_bias"),
    (GenerationRequest(SamplingParams(logit_bias={-1: 1.0}), messages=HI), "logit_bias"),
    (GenerationRequest(SamplingParams(logit_bias={5: 100.5}), messages=HI), "logit_bias"),
    (GenerationRequest(SamplingParams(max_tokens=65), messages=HI), "max_tokens"),
    (GenerationRequest(SamplingParams(), prompt_token_ids=[1, 100]), "prompt"),
    (GenerationRequest(SamplingParams(), prompt_token_ids=[]), "prompt"),
    (GenerationRequest(SamplingParams(), messages=[]), "messages"),
    (GenerationRequest(SamplingParams(), messages=HI, prompt="p"), "messages"),
])
def test_validate_names_the_broken_rule(request_, param):
    with pytest.raises(ClientError) as err:
        request_.validate(CONFIG)
    assert err.value.param == param


def test_max_tokens_over_the_context_is_context_length_exceeded():
    with pytest.raises(ClientError) as err:
        GenerationRequest(SamplingParams(max_tokens=65), messages=HI).validate(CONFIG)
    assert err.value.code == "context_length_exceeded" and "64" in err.value.message
    GenerationRequest(SamplingParams(max_tokens=64), messages=HI).validate(CONFIG)


@pytest.mark.parametrize("raw", [{"a": 1}, {"1.5": 1}, {"": 1}, {"1": "x"}])
def test_logit_bias_keys_must_be_token_ids(raw):
    with pytest.raises(ClientError) as err:
        parse_logit_bias(raw)
    assert err.value.param == "logit_bias"


def test_generator_config_round_trips_through_parameters():
    config = GeneratorConfig(max_model_len=2048, vocab_size=128256, max_batch_size=16, engine="engine",
                             intra_op_threads=2, stream_interval=StreamInterval(0.02, 4), prefix_caching=False)
    params = config.to_parameters()
    assert all(isinstance(v, str) for v in params.values())
    assert GeneratorConfig.from_parameters(params) == config
    assert GeneratorConfig.from_parameters(GeneratorConfig(64, 100).to_parameters()) == GeneratorConfig(64, 100)
