"""The LLM model driven directly on Triton's HTTP port with the vLLM backend's interface (generate and
generate_stream), checked against the same generation through the OpenAI adapter; min_tokens and stream_options
through the adapter."""
from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.integration.llm_helpers import MODEL, ServedLlm, served_llm

PROMPT = "The sea is"


@pytest.fixture(scope="module")
def llm(triton, model_repository) -> ServedLlm:
    return served_llm(triton.http_url, model_repository)


@pytest.fixture(scope="module")
def reference(openai_client) -> str:
    """Greedy 8 tokens through our own contract (the adapter's /v1/completions), ignore_eos for a fixed length."""
    result = openai_client.completions.create(model=MODEL, prompt=PROMPT, temperature=0, max_tokens=8,
                                              extra_body={"ignore_eos": True})
    return result.choices[0].text


def generate(triton, body: dict, stream: bool = False) -> httpx.Response:
    route = "generate_stream" if stream else "generate"
    return httpx.post(f"{triton.http_url}/v2/models/{MODEL}/{route}", json=body, timeout=120)


def scalar(value):
    return value[0] if isinstance(value, list) else value


GREEDY_8 = {"temperature": 0, "max_tokens": 8, "ignore_eos": True}


def test_generate_matches_our_contract_and_prepends_the_prompt(triton, reference):
    response = generate(triton, {"text_input": PROMPT, "parameters": GREEDY_8})
    assert response.status_code == 200, response.text
    assert scalar(response.json()["text_output"]) == PROMPT + reference  # vLLM: the prompt first unless excluded
    excluded = generate(triton, {"text_input": PROMPT, "exclude_input_in_output": True, "parameters": GREEDY_8})
    assert scalar(excluded.json()["text_output"]) == reference


def test_generate_stream_sends_new_text_per_response(triton, reference):
    body = {"text_input": PROMPT, "stream": True, "sampling_parameters": json.dumps(GREEDY_8),
            "return_finish_reason": True, "return_num_input_tokens": True, "return_num_output_tokens": True}
    response = generate(triton, body, stream=True)
    assert response.status_code == 200, response.text
    events = [json.loads(line[len("data: "):]) for line in response.text.splitlines() if line.startswith("data: ")]
    assert len(events) >= 2 and not any("error" in e for e in events), events  # the first token, then merged steps
    assert "".join(scalar(e["text_output"]) for e in events) == reference
    assert sum(scalar(e["num_output_tokens"]) for e in events) == 8
    assert scalar(events[-1]["finish_reason"]) == "length" and scalar(events[0]["finish_reason"]) == "None"
    assert scalar(events[0]["num_input_tokens"]) > 1


def test_generate_min_tokens_and_errors(triton, llm):
    eos = llm.tokenizer.token_to_id("<|eot_id|>")
    forced = {"temperature": 0, "max_tokens": 12, "logit_bias": {str(eos): 100}}  # nested: as the tensor

    def output_tokens(sampling: dict) -> int:
        response = generate(triton, {"text_input": PROMPT, "return_num_output_tokens": True,
                                     "sampling_parameters": json.dumps(sampling)})
        assert response.status_code == 200, response.text
        return scalar(response.json()["num_output_tokens"])
    assert output_tokens(forced) == 1  # the EOS at once
    assert output_tokens({**forced, "min_tokens": 5}) == 6  # five tokens, then the EOS
    for params, name in [({"top_k": 50}, "top_k"), ({"min_tokens": 9, "max_tokens": 4}, "min_tokens")]:
        bad = generate(triton, {"text_input": PROMPT, "parameters": params})
        assert bad.status_code == 400 and name in bad.json()["error"], bad.text


def test_min_tokens_holds_back_eos_through_the_adapter(openai_client, llm):
    eos = llm.tokenizer.token_to_id("<|eot_id|>")
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "temperature": 0, "max_tokens": 12,
            "logit_bias": {str(eos): 100}}
    assert openai_client.chat.completions.create(**body).usage.completion_tokens == 1
    held = openai_client.chat.completions.create(**body, extra_body={"min_tokens": 5})
    assert held.usage.completion_tokens == 6 and held.choices[0].finish_reason == "stop"
    with pytest.raises(openai.BadRequestError) as exc:
        openai_client.chat.completions.create(**{**body, "max_tokens": 4}, extra_body={"min_tokens": 5})
    assert exc.value.body["param"] == "min_tokens"


@pytest.mark.parametrize("route, body", [
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
    ("/v1/completions", {"prompt": PROMPT}),
])
def test_stream_options_without_stream_is_400(http, route, body):
    for stream in ({}, {"stream": False}):
        response = http.post(route, json={"model": MODEL, "max_tokens": 2, **body, **stream,
                                          "stream_options": {"include_usage": True}})
        assert response.status_code == 400 and response.json()["error"]["param"] == "stream_options", response.text
