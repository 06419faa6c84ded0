"""Each request rule lives in one place (runtime/llm/protocol.py, runtime/llm/tokenizer.py's context check,
runtime/embeddings/tokenization.py) and holds on both roads into the stack: through the adapter (an OpenAI 400
naming the parameter) and straight to Triton (the model's own 400, for callers that bypass the adapter). Real
tritonserver and adapter, demo repository."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

from adapter.embeddings.protocol import parse_input, triton_inputs
from adapter.errors import OpenAIError
from adapter.triton_client import TritonClient
from builders.embeddings import DEMO_MODEL_ID as EMBEDDING_MODEL
from runtime.embeddings.tokenization import MAX_INPUTS
from runtime.llm.protocol import MAX_N, MAX_STOP_STRINGS, GenerationRequest, SamplingParams
from tests.integration.llm_helpers import MODEL, ServedLlm, served_llm

pytestmark = pytest.mark.integration

MESSAGES = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def llm(triton, model_repository) -> ServedLlm:
    return served_llm(triton.http_url, model_repository)


def _triton_call(triton, call) -> OpenAIError:
    """The error a direct Triton caller gets for `call(client)` (which must fail)."""
    async def main():
        client = TritonClient(triton.grpc_url, 120)
        try:
            await call(client)
        finally:
            await client.close()
    with pytest.raises(OpenAIError) as err:
        asyncio.run(main())
    return err.value


def _generate_error(triton, sampling: SamplingParams) -> OpenAIError:
    """A chat request built with the contract's own class (no adapter), sent to the generator model."""
    request = GenerationRequest(sampling, messages=MESSAGES)

    async def generate(client):
        inputs = {"request": np.array([request.to_json().encode()], dtype=np.object_)}
        async for _ in client.stream(MODEL, inputs):
            pass
    return _triton_call(triton, generate)


def _adapter_error(http, path: str, body: dict) -> dict:
    response = http.post(path, json={"model": MODEL, **body})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    return error


def _chat_error(http, **body) -> dict:
    return _adapter_error(http, "/v1/chat/completions", {"messages": MESSAGES, **body})


def _assert_400(err: OpenAIError, param: str) -> None:
    assert err.status == 400 and err.param == param, (err.status, err.param, err.message)


def test_n_is_bounded_by_the_contract_and_the_models_batch(http, triton, llm):
    _assert_400(_generate_error(triton, SamplingParams(n=MAX_N + 1)), "n")
    assert _chat_error(http, n=MAX_N + 1)["param"] == "n"
    over_batch = llm.max_batch_size + 1  # within MAX_N: the served model's own limit
    assert over_batch <= MAX_N
    _assert_400(_generate_error(triton, SamplingParams(n=over_batch)), "n")
    error = _chat_error(http, n=over_batch)
    assert error["param"] == "n" and str(llm.max_batch_size) in error["message"]
    assert _adapter_error(http, "/v1/completions", {"prompt": "Hi", "n": over_batch})["param"] == "n"


def test_stop_strings_are_at_most_four(http, triton):
    stops = tuple(f"s{i}" for i in range(MAX_STOP_STRINGS + 1))
    err = _generate_error(triton, SamplingParams(stop=stops))
    _assert_400(err, "stop")
    error = _chat_error(http, stop=list(stops))
    assert error["param"] == "stop" and error["message"] == err.message
    assert _adapter_error(http, "/v1/completions", {"prompt": "Hi", "stop": list(stops)})["param"] == "stop"


def test_logit_bias_keys_are_token_ids_of_the_vocabulary(http, triton, llm):
    err = _generate_error(triton, SamplingParams(logit_bias={llm.vocab_size: 1.0}))
    _assert_400(err, "logit_bias")
    error = _chat_error(http, logit_bias={str(llm.vocab_size): 1})
    assert error["param"] == "logit_bias" and error["message"] == err.message
    _assert_400(_generate_error(triton, SamplingParams(logit_bias={1: 150.0})), "logit_bias")
    assert _chat_error(http, logit_bias={"1": 150})["param"] == "logit_bias"
    assert _chat_error(http, logit_bias={"token": 1})["param"] == "logit_bias"


def test_max_tokens_is_at_most_the_context_window(http, triton, llm):
    err = _generate_error(triton, SamplingParams(max_tokens=llm.max_model_len + 1))
    _assert_400(err, "max_tokens")
    assert err.code == "context_length_exceeded"
    error = _chat_error(http, max_tokens=llm.max_model_len + 1)
    assert (error["param"], error["code"], error["message"]) == ("max_tokens", err.code, err.message)
    # the same rule named by the parameter the client sent
    assert _chat_error(http, max_completion_tokens=llm.max_model_len + 1)["param"] == "max_completion_tokens"
    completion = _adapter_error(http, "/v1/completions", {"prompt": "Hi", "max_tokens": llm.max_model_len + 1})
    assert completion["param"] == "max_tokens" and completion["code"] == "context_length_exceeded"


def test_prompt_and_max_tokens_fit_the_context_named_as_the_client_sent_them(http, triton, llm):
    """Checked by the generator after tokenization (runtime/llm/tokenizer.py): the adapter's 400 names the field
    the client sent, max_completion_tokens included, and the field that holds the prompt."""
    err = _generate_error(triton, SamplingParams(max_tokens=llm.max_model_len))  # any prompt leaves less room
    _assert_400(err, "max_tokens")
    assert err.code == "context_length_exceeded"
    for field in ("max_tokens", "max_completion_tokens"):
        error = _chat_error(http, **{field: llm.max_model_len})
        assert (error["param"], error["code"], error["message"]) == (field, err.code, err.message)
    completion = _adapter_error(http, "/v1/completions", {"prompt": "Hi", "max_tokens": llm.max_model_len})
    assert (completion["param"], completion["code"]) == ("max_tokens", "context_length_exceeded")
    too_long = "sea " * llm.max_model_len  # the prompt alone fills the window
    assert _chat_error(http, messages=[{"role": "user", "content": too_long}])["param"] == "messages"
    assert _adapter_error(http, "/v1/completions", {"prompt": too_long})["param"] == "prompt"


def test_embeddings_take_at_most_2048_inputs(http, triton):
    texts = ["x"] * (MAX_INPUTS + 1)

    async def embed(client):
        await client.infer(EMBEDDING_MODEL, triton_inputs(parse_input(texts[:1]), False) | {
            "TEXT": np.array([t.encode() for t in texts], dtype=np.object_)}, ["EMBEDDINGS", "TOKEN_COUNTS"])
    err = _triton_call(triton, embed)
    _assert_400(err, "input")
    assert str(MAX_INPUTS) in err.message
    response = http.post("/v1/embeddings", json={"model": EMBEDDING_MODEL, "input": texts})
    assert response.status_code == 400 and response.json()["error"]["param"] == "input"
    assert str(MAX_INPUTS) in response.json()["error"]["message"]
