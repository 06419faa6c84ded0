"""The vLLM backend's tensor interface mapped onto our generator contract (pure; Triton-side in integration)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from runtime.errors import ClientError
from runtime.llm.protocol import SamplingParams
from runtime.llm.vllm_interface import DEFAULT_MAX_TOKENS, VllmRequest, VllmResponses


def request(**inputs) -> VllmRequest:
    return VllmRequest.from_inputs({"text_input": "Hello", **inputs})


def payload(choices, prompt_tokens=3, completion_tokens=1) -> str:
    return json.dumps({"choices": [{"index": i, "text": t, "finish_reason": f, "logprobs": None}
                                   for i, t, f in choices],
                       "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}})


def texts(tensors) -> list[str]:
    return [t.decode() for t in tensors["text_output"]]


def test_sampling_parameters_map_to_our_sampling():
    req = request(sampling_parameters=json.dumps({"temperature": "0", "max_tokens": "8", "stop": "END", "top_k": -1,
                                                  "ignore_eos": "true", "min_tokens": 2, "seed": 3, "n": 2}))
    body = json.loads(req.request_json)
    assert body["prompt"] == "Hello"
    params = SamplingParams.from_json(body["sampling"], 100)
    assert (params.temperature, params.max_tokens, params.stop, params.ignore_eos, params.min_tokens, params.seed,
            params.n) == (0.0, 8, ("END",), True, 2, 3, 2)
    assert request().sampling == SamplingParams(max_tokens=DEFAULT_MAX_TOKENS)  # vLLM's default, not the context's rest
    assert request(sampling_parameters='{"max_tokens": null}').sampling == SamplingParams(max_tokens=None)


def test_request_parameters_are_read_when_the_tensor_is_absent():
    req = VllmRequest.from_inputs({"text_input": "x"}, json.dumps({"temperature": 0, "stream": True}))
    assert req.sampling.temperature == 0.0 and req.stream and not req.prepend_prompt


@pytest.mark.parametrize("inputs, param", [
    ({"sampling_parameters": '{"top_k": 50}'}, "top_k"),
    ({"sampling_parameters": '{"bogus": 1}'}, "bogus"),
    ({"sampling_parameters": '{"temperature": "hot"}'}, "temperature"),
    ({"sampling_parameters": "[1]"}, "sampling_parameters"),
    ({"sampling_parameters": "{"}, "sampling_parameters"),
    ({"text_input": ""}, "text_input"),
    ({"stream": True, "exclude_input_in_output": False}, "exclude_input_in_output"),
    ({"return_num_output_tokens": True, "sampling_parameters": '{"n": 2}'}, "return_num_output_tokens"),
])
def test_bad_requests_name_the_field(inputs, param):
    with pytest.raises(ClientError) as err:
        request(**inputs)
    assert err.value.param == param


def test_not_streaming_one_response_with_the_prompt_prepended():
    out = VllmResponses(request(return_finish_reason=True, return_num_input_tokens=True,
                                return_num_output_tokens=True))
    assert out.tensors(payload([(0, " wor", None)]), final=False) is None
    final = out.tensors(payload([(0, "ld", "length")], completion_tokens=2), final=True)
    assert texts(final) == ["Hello world"]
    assert final["finish_reason"].tolist() == [b"length"]
    assert final["num_input_tokens"].tolist() == [3] and final["num_output_tokens"].tolist() == [2]
    assert final["text_output"].dtype == np.object_


def test_streaming_new_text_per_response_and_n_choices():
    out = VllmResponses(request(stream=True, sampling_parameters='{"n": 2}', return_finish_reason=True))
    first = out.tensors(payload([(0, "a", None), (1, "b", None)]), final=False)
    second = out.tensors(payload([(1, "c", "stop")]), final=False)
    last = out.tensors(payload([(0, "d", "length")]), final=True)
    assert [texts(first), texts(second), texts(last)] == [["a", "b"], ["", "c"], ["d", ""]]
    assert last["finish_reason"].tolist() == [b"length", b"stop"] and "num_input_tokens" not in last
    echoed = VllmResponses(request(stream=True, exclude_input_in_output=True))
    assert texts(echoed.tensors(payload([(0, "x", None)]), final=False)) == ["x"]
    assert texts(VllmResponses(request(exclude_input_in_output=True)).tensors(payload([(0, "y", "stop")]),
                                                                              True)) == ["y"]
