"""Configurable request limits: each a 4xx OpenAI envelope naming the limit; requests within them pass on."""
from __future__ import annotations

import httpx
import openai
import pytest

from tests.integration.hardening_support import CHAT_MODEL, EMBEDDING_MODEL, assert_envelope

ABSENT = "no-such-model"  # within the limits, the router answers: 404 proves the guard let the request through


@pytest.fixture(scope="module")
def limited(start_adapter):
    return start_adapter(env={"MAX_BODY_BYTES": "4096", "MAX_N": "2", "MAX_TOKENS_LIMIT": "16",
                              "MAX_EMBEDDING_INPUTS": "4", "MAX_IMAGES": "1"})


def test_body_size_is_413(limited):
    big = {"model": ABSENT, "input": "x" * 5000}
    error = assert_envelope(httpx.post(f"{limited.base_url}/embeddings", json=big), 413, "request_too_large")
    assert "4096 bytes" in error["message"]
    chunked = httpx.post(f"{limited.base_url}/embeddings", content=iter([b'{"input": "', b"x" * 5000, b'"}']),
                         headers={"content-type": "application/json"})  # no Content-Length: counted while read
    assert_envelope(chunked, 413, "request_too_large")


@pytest.mark.parametrize("path,body,param,name", [
    ("/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "n": 3}, "n", "max_n"),
    ("/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 17}, "max_tokens",
     "max_tokens_limit"),
    ("/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 99},
     "max_completion_tokens", "max_tokens_limit"),
    ("/completions", {"prompt": "hi", "n": 5}, "n", "max_n"),
    ("/embeddings", {"input": ["a", "b", "c", "d", "e"]}, "input", "max_embedding_inputs"),
    ("/images/generations", {"prompt": "a cat", "n": 2}, "n", "max_images"),
])
def test_each_limit_is_a_400_naming_it(limited, path, body, param, name):
    error = assert_envelope(httpx.post(f"{limited.base_url}{path}", json={"model": ABSENT, **body}), 400,
                            "limit_exceeded")
    assert error["param"] == param and name in error["message"] and error["type"] == "invalid_request_error"


@pytest.mark.parametrize("path,body", [
    ("/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "n": 2, "max_tokens": 16}),
    ("/embeddings", {"input": ["a", "b", "c", "d"]}),
    ("/embeddings", {"input": list(range(50))}),  # one input of token ids
    ("/images/generations", {"prompt": "a cat", "n": 1}),
])
def test_requests_within_limits_reach_the_router(limited, path, body):
    assert_envelope(httpx.post(f"{limited.base_url}{path}", json={"model": ABSENT, **body}), 404, "model_not_found")


def test_openai_client_sees_bad_request(limited):
    client = openai.OpenAI(base_url=limited.base_url, api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=ABSENT, messages=[{"role": "user", "content": "hi"}], n=3)
    assert info.value.code == "limit_exceeded" and info.value.param == "n"


def test_served_models_work_at_the_limits(limited):
    client = openai.OpenAI(base_url=limited.base_url, api_key="unused", max_retries=0)
    vectors = client.embeddings.create(model=EMBEDDING_MODEL, input=["a", "b", "c", "d"])
    assert len(vectors.data) == 4
    chat = client.chat.completions.create(model=CHAT_MODEL, messages=[{"role": "user", "content": "hi"}], n=2,
                                          max_tokens=16)
    assert len(chat.choices) == 2 and chat.usage.completion_tokens <= 32
