"""Chat/completions wire protocol: the generator request it becomes (runtime/llm/protocol.py), prompt fan-out, and
every 400 with its `param` (fake Triton)."""
from __future__ import annotations

import json

import httpx
import pytest
from tritonclient.utils import InferenceServerException

from adapter.app import create_app
from adapter.llm.protocol import ChatCompletionRequest, CompletionRequest
from adapter.triton_client import to_openai_error
from runtime.errors import ClientError
from runtime.llm.tokenizer import check_length
from bench.fake_llm_triton import MAX_MODEL_LEN, MODEL, VOCAB_SIZE, FakeRegistry, FakeTriton


def sampling(body: ChatCompletionRequest | CompletionRequest) -> dict:
    """The `sampling` object of the body's (first) generator request, as the generator receives it."""
    return payloads(body)[0]["sampling"]


def payloads(body: ChatCompletionRequest | CompletionRequest) -> list[dict]:
    requests = ([body.to_generation_request()] if isinstance(body, ChatCompletionRequest)
                else body.to_generation_requests())
    return [json.loads(r.to_json()) for r in requests]


CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
COMPLETION = {"model": MODEL, "prompt": "hi"}


@pytest.fixture
def fake() -> FakeTriton:
    return FakeTriton()


@pytest.fixture
async def client(fake):
    app = create_app()
    app.state.triton, app.state.registry = fake, FakeRegistry()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


def test_chat_sampling_defaults_and_aliases():
    body = ChatCompletionRequest(**CHAT, max_completion_tokens=7, stop="END", seed=3, ignore_eos=True,
                                 logprobs=True, top_logprobs=2, logit_bias={"5": -100})
    assert sampling(body) == {"temperature": 1.0, "top_p": 1.0, "top_k": 0, "presence_penalty": 0.0,
                              "frequency_penalty": 0.0, "logit_bias": {"5": -100.0}, "seed": 3, "n": 1,
                              "max_tokens": 7, "stop": ["END"], "ignore_eos": True, "min_tokens": 0, "logprobs": True,
                              "top_logprobs": 2}
    assert sampling(ChatCompletionRequest(**CHAT, max_tokens=4))["max_tokens"] == 4
    assert sampling(ChatCompletionRequest(**CHAT))["max_tokens"] is None  # rest of the context window
    assert sampling(ChatCompletionRequest(**CHAT, temperature=None, top_p=None, n=None))["temperature"] == 1.0
    assert [sampling(ChatCompletionRequest(**CHAT, top_k=k))["top_k"] for k in (-1, 0, 40)] == [0, 0, 40]


def test_chat_content_parts_and_roles_are_flattened():
    body = ChatCompletionRequest(model=MODEL, messages=[
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": None},
        {"role": "user", "content": "c", "name": "bob"}])
    assert payloads(body)[0]["messages"] == [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "a\nb"},
        {"role": "assistant", "content": ""}, {"role": "user", "content": "c"}]


@pytest.mark.parametrize("prompt, expected", [
    ("abc", [{"prompt": "abc"}]),
    (["a", "b"], [{"prompt": "a"}, {"prompt": "b"}]),
    ([1, 2, 3], [{"prompt_token_ids": [1, 2, 3]}]),
    ([[1, 2], [3]], [{"prompt_token_ids": [1, 2]}, {"prompt_token_ids": [3]}]),
])
def test_completion_prompt_forms(prompt, expected):
    sent = payloads(CompletionRequest(model=MODEL, prompt=prompt))
    assert [{k: p[k] for k in ("prompt", "prompt_token_ids") if k in p} for p in sent] == expected


def test_completion_logprobs_and_echo_map_to_sampling():
    sent = payloads(CompletionRequest(model=MODEL, prompt=["a", "b"], logprobs=0, echo=True))
    assert [p["echo"] for p in sent] == [True, True]
    assert sent[0]["sampling"]["logprobs"] is True and sent[0]["sampling"]["top_logprobs"] == 0
    assert sampling(CompletionRequest(**COMPLETION))["logprobs"] is False


CHAT_400 = [
    ({"temperature": 2.1}, "temperature"), ({"temperature": -0.1}, "temperature"),
    ({"top_p": 0}, "top_p"), ({"top_p": 1.01}, "top_p"), ({"top_k": -2}, "top_k"),
    ({"n": 0}, "n"), ({"n": 129}, "n"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"presence_penalty": 2.5}, "presence_penalty"), ({"frequency_penalty": -2.5}, "frequency_penalty"),
    ({"logit_bias": {"5": 101}}, "logit_bias"), ({"logit_bias": {"5": -100.5}}, "logit_bias"),
    ({"logit_bias": {"hello": 1}}, "logit_bias"), ({"logit_bias": {str(VOCAB_SIZE): 1}}, "logit_bias"),
    ({"logit_bias": {"-1": 1}}, "logit_bias"),
    ({"messages": []}, "messages"),
    ({"max_tokens": 0}, "max_tokens"), ({"max_completion_tokens": 0}, "max_completion_tokens"),
    ({"max_tokens": MAX_MODEL_LEN + 1}, "max_tokens"),
    ({"max_completion_tokens": MAX_MODEL_LEN + 1}, "max_completion_tokens"),
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"), ({"top_logprobs": 2}, "top_logprobs"),
    ({"stream_options": {"include_usage": True}}, "stream_options"),
    ({"stream": False, "stream_options": {"include_usage": False}}, "stream_options"),
    ({"min_tokens": 5, "max_tokens": 4}, "min_tokens"), ({"min_tokens": 5, "max_completion_tokens": 4}, "min_tokens"),
    ({"min_tokens": -1}, "min_tokens"),
    ({"messages": [{"role": "function", "content": "x"}]}, "messages.0.role"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0"),  # no tool_call_id
    ({"tool_choice": "required"}, "tool_choice"),  # no tools
    ({"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "other"}}}, "tool_choice"),
    ({"tools": [TOOL], "tool_choice": "required", "response_format": {"type": "json_object"}}, "tool_choice"),
    ({"tools": [{"type": "function", "function": {"name": "bad name"}}]}, "tools.0.function.name"),
    ({"response_format": {"type": "json_schema"}}, "response_format"),
    ({"response_format": {"type": "yaml"}}, "response_format"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     "messages.0.content"),
]


@pytest.mark.parametrize("change, param", CHAT_400)
async def test_chat_bad_input_is_400_with_param(client, fake, change, param):
    response = await client.post("/v1/chat/completions", json={**CHAT, **change})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert error["param"] is not None and error["param"].startswith(param), error
    assert fake.requests == []  # rejected before reaching Triton


COMPLETION_400 = [
    ({"prompt": []}, "prompt"), ({"prompt": [[]]}, "prompt"), ({"prompt": [1, "a"]}, "prompt"),
    ({"prompt": [1, VOCAB_SIZE]}, "prompt"), ({"prompt": [[1], [-1]]}, "prompt"),
    ({"logprobs": 6}, "logprobs"), ({"n": 0}, "n"), ({"stop": ["1", "2", "3", "4", "5"]}, "stop"),
    ({"max_tokens": 0}, "max_tokens"), ({"max_tokens": MAX_MODEL_LEN + 1}, "max_tokens"),
    ({"suffix": "tail"}, "suffix"), ({"best_of": 3}, "best_of"), ({"temperature": 3}, "temperature"),
    ({"stream_options": {"include_usage": True}}, "stream_options"), ({"min_tokens": 9, "max_tokens": 8}, "min_tokens"),
]


@pytest.mark.parametrize("change, param", COMPLETION_400)
async def test_completion_bad_input_is_400_with_param(client, fake, change, param):
    response = await client.post("/v1/completions", json={**COMPLETION, **change})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param, response.json()
    assert fake.requests == []


async def test_good_edge_values_are_accepted(client):
    ok = {"temperature": 0, "top_p": 1, "n": 2, "stop": ["a", "b", "c", "d"], "presence_penalty": -2,
          "frequency_penalty": 2, "logit_bias": {"0": -100, str(VOCAB_SIZE - 1): 100}, "max_tokens": MAX_MODEL_LEN,
          "logprobs": True, "top_logprobs": 20, "seed": 2**40, "user": "u-1"}
    response = await client.post("/v1/chat/completions", json={**CHAT, **ok})
    assert response.status_code == 200, response.text
    response = await client.post("/v1/completions", json={**COMPLETION, "logprobs": 5, "best_of": 1, "stop": "x"})
    assert response.status_code == 200, response.text


def test_min_tokens_and_stream_options_when_streaming():
    body = CompletionRequest(**COMPLETION, stream=True, stream_options={"include_usage": True}, min_tokens=4,
                             max_tokens=4)
    assert body.include_usage and sampling(body)["min_tokens"] == 4
    assert sampling(ChatCompletionRequest(**CHAT, min_tokens=7))["min_tokens"] == 7  # no max: the context's rest
    assert ChatCompletionRequest(**CHAT, stream=False, stream_options=None).include_usage is False


async def test_generator_client_error_becomes_400_before_streaming(client):
    for stream in (False, True):
        response = await client.post("/v1/completions", json={**COMPLETION, "prompt": "TOO LONG", "stream": stream})
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("application/json")
        assert "64" in response.json()["error"]["message"]


def generator_checking_length(prompt_tokens: int):
    """A generator whose prompts tokenize to prompt_tokens: it applies the tokenizer's context check and answers
    as the real one does over Triton (the ClientError's wire form in an error response)."""
    async def stream(model, inputs, request_id=""):
        request = json.loads(inputs["request"].reshape(-1)[0])
        try:
            check_length(prompt_tokens, request["sampling"]["max_tokens"], MAX_MODEL_LEN,
                         "messages" if "messages" in request else "prompt")
        except ClientError as exc:
            raise to_openai_error(InferenceServerException(msg=exc.to_wire())) from exc
        yield {}  # never reached in these tests
    return stream


@pytest.mark.parametrize("stream", [False, True])
async def test_the_generators_context_error_names_the_field_the_client_sent(client, fake, stream):
    """prompt + max_tokens over the context is found by the generator after tokenization; the 400 names
    max_completion_tokens when the chat client sent that, max_tokens when it sent max_tokens."""
    fake.stream = generator_checking_length(MAX_MODEL_LEN - 4)
    for path, body, param in [("/v1/chat/completions", {**CHAT, "max_completion_tokens": 8}, "max_completion_tokens"),
                              ("/v1/chat/completions", {**CHAT, "max_tokens": 8}, "max_tokens"),
                              ("/v1/completions", {**COMPLETION, "max_tokens": 8}, "max_tokens")]:
        response = await client.post(path, json={**body, "stream": stream})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert (error["param"], error["code"]) == (param, "context_length_exceeded")
        assert f"{MAX_MODEL_LEN + 4} tokens" in error["message"]
    fake.stream = generator_checking_length(MAX_MODEL_LEN)  # the prompt alone fills the context
    for path, body, param in [("/v1/chat/completions", CHAT, "messages"), ("/v1/completions", COMPLETION, "prompt")]:
        response = await client.post(path, json={**body, "stream": stream})
        assert response.status_code == 400 and response.json()["error"]["param"] == param


async def test_one_bad_prompt_in_a_batch_fails_the_request_and_cancels_the_others(client, fake):
    fake.delay_s = 0.01
    response = await client.post("/v1/completions", json={**COMPLETION, "prompt": ["fine", "TOO LONG"]})
    assert response.status_code == 400
    assert (fake.completed, fake.cancelled) == (0, 1)


async def test_unknown_model_is_404(client):
    response = await client.post("/v1/chat/completions", json={**CHAT, "model": "nope"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "model_not_found"


def test_tools_and_guides_reach_the_generator():
    tools = [TOOL, {"type": "function", "function": {"name": "now"}}]
    forced = ChatCompletionRequest(**CHAT, tools=tools, tool_choice={"type": "function", "function": {"name": "now"}})
    payload = payloads(forced)[0]
    assert [t["function"]["name"] for t in payload["tools"]] == ["get_weather", "now"]  # all rendered in the prompt
    assert payload["guide"] == {"type": "tool_calls", "parallel": False, "tools": [{"name": "now", "parameters": None}]}
    required = payloads(ChatCompletionRequest(**CHAT, tools=tools, tool_choice="required"))[0]["guide"]
    assert required["parallel"] and [t["name"] for t in required["tools"]] == ["get_weather", "now"]
    assert "guide" not in payloads(ChatCompletionRequest(**CHAT, tools=tools))[0]  # auto: parsed, not enforced
    none = payloads(ChatCompletionRequest(**CHAT, tools=tools, tool_choice="none"))[0]
    assert "tools" not in none and "guide" not in none
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": True}}
    assert payloads(ChatCompletionRequest(**CHAT, response_format=fmt))[0]["guide"] == {"type": "json_schema",
                                                                                            "schema": schema}
    assert payloads(CompletionRequest(**COMPLETION, response_format={"type": "json_object"}))[0]["guide"] == {
        "type": "json_object"}


def test_history_with_tool_calls_is_flattened_for_the_template():
    body = ChatCompletionRequest(**{**CHAT, "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
                                              "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "cold"}]})
    messages = payloads(body)[0]["messages"]
    assert messages[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": {"city": "Oslo"}}
    assert messages[2] == {"role": "tool", "content": "cold", "tool_call_id": "call_1"}


CALL_WORDS = ['{"name": "get_weather", ', '"parameters": {"city"', ': "Paris"}}']


async def test_tool_call_output_becomes_tool_calls():
    fake = FakeTriton(words=CALL_WORDS)
    app = create_app()
    app.state.triton, app.state.registry = fake, FakeRegistry()
    body = {**CHAT, "tools": [TOOL]}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        whole = (await c.post("/v1/chat/completions", json=body)).json()["choices"][0]
        stream = await c.post("/v1/chat/completions", json={**body, "stream": True})
    assert whole["finish_reason"] == "tool_calls" and whole["message"]["content"] is None
    call = whole["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    chunks = [json.loads(line[6:]) for line in stream.text.splitlines() if line.startswith("data: {")]
    deltas = [d for ch in chunks for choice in ch["choices"] for d in choice["delta"].get("tool_calls", [])]
    assert deltas[0]["id"] and deltas[0]["function"]["name"] == "get_weather"
    assert all("id" not in d and "name" not in d["function"] for d in deltas[1:])
    assert json.loads("".join(d["function"]["arguments"] for d in deltas)) == {"city": "Paris"}
    assert [ch["choices"][0]["finish_reason"] for ch in chunks if ch["choices"]][-1] == "tool_calls"
    assert not any(choice["delta"].get("content") for ch in chunks for choice in ch["choices"])
