"""/v1/chat/completions on the real stack (tritonserver + adapter, tiny-llama-3) through the official clients."""
from __future__ import annotations

import asyncio
import json
import time

import httpx
import openai
import pytest

from tests.integration.llm_helpers import MODEL, ServedLlm, served_llm, stop_across_tokens

pytestmark = pytest.mark.integration

MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Tell me about the sea."}]
GREEDY = {"model": MODEL, "messages": MESSAGES, "temperature": 0}


@pytest.fixture(scope="module")
def llm(triton, model_repository) -> ServedLlm:
    return served_llm(triton.http_url, model_repository)


def stream_text(client: openai.OpenAI, **kwargs) -> tuple[list[str], str | None, list]:
    deltas, finish, chunks = [], None, []
    for chunk in client.chat.completions.create(stream=True, **kwargs):
        chunks.append(chunk)
        for choice in chunk.choices:
            if choice.delta.content:
                deltas.append(choice.delta.content)
            finish = choice.finish_reason or finish
    return deltas, finish, chunks


def test_response_shape_and_usage(openai_client):
    r = openai_client.chat.completions.create(**GREEDY, max_tokens=8)
    assert r.id.startswith("chatcmpl-") and r.object == "chat.completion" and r.model == MODEL
    assert abs(r.created - time.time()) < 600
    choice = r.choices[0]
    assert choice.index == 0 and choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens <= 8
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_streamed_text_equals_whole_text_at_temperature_0(openai_client):
    whole = openai_client.chat.completions.create(**GREEDY, max_tokens=24)
    deltas, finish, chunks = stream_text(openai_client, **GREEDY, max_tokens=24)
    assert "".join(deltas) == whole.choices[0].message.content
    assert finish == whole.choices[0].finish_reason
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason is not None and not chunks[-1].choices[0].delta.content


def metric(http: httpx.Client, name: str) -> float:
    line = next((l for l in http.get("/metrics").text.splitlines() if l.startswith(f'{name}{{model="{MODEL}"}}')),
                None)
    return float(line.split()[-1]) if line else 0.0


def test_token_metrics_are_recorded(openai_client, http):
    names = ["openai_adapter:time_to_first_token_seconds_count", "openai_adapter:inter_token_latency_seconds_count",
             "openai_adapter:generation_tokens_total"]
    before = [metric(http, n) for n in names]
    stream_text(openai_client, **GREEDY, max_tokens=5)
    after = [metric(http, n) for n in names]
    assert after[0] == before[0] + 1 and after[1] >= before[1] + 1 and after[2] == before[2] + 5


def test_same_seed_same_text_at_temperature_1(openai_client):
    def sample(seed: int) -> str:
        return openai_client.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=1, seed=seed,
                                                     max_tokens=16).choices[0].message.content
    first = sample(1234)
    assert sample(1234) == first
    assert sample(4321) != first  # the seed really drives sampling


def test_streamed_text_equals_whole_text_at_the_same_seed(openai_client, http):
    """Long enough for the generator to coalesce steps; the stream still ends with usage, then [DONE]."""
    body = {"model": MODEL, "messages": MESSAGES, "temperature": 1, "seed": 77, "max_tokens": 48}
    whole = openai_client.chat.completions.create(**body, extra_body={"ignore_eos": True}).choices[0].message.content
    stream = http.post("/v1/chat/completions", json={**body, "ignore_eos": True, "stream": True,
                                                     "stream_options": {"include_usage": True}}, timeout=60)
    events = [line[6:] for line in stream.text.splitlines() if line.startswith("data: ")]
    chunks = [json.loads(e) for e in events[:-1]]
    assert events[-1] == "[DONE]" and chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 48
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1]) == whole


def test_max_tokens_5_ends_with_length(openai_client):
    r = openai_client.chat.completions.create(**GREEDY, max_tokens=5)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 5
    # max_completion_tokens is the same limit (langchain sends it).
    r = openai_client.chat.completions.create(**GREEDY, max_completion_tokens=5)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 5


def test_stop_string_split_across_tokens_is_cut(openai_client):
    deltas, _, _ = stream_text(openai_client, **GREEDY, max_tokens=40)
    found = stop_across_tokens(deltas)
    assert found, f"no usable stop string in the greedy output {deltas!r}"
    stop, at = found
    r = openai_client.chat.completions.create(**GREEDY, max_tokens=40, stop=[stop, "@@never@@"])
    assert r.choices[0].message.content == "".join(deltas)[:at]
    assert r.choices[0].finish_reason == "stop"
    streamed, finish, _ = stream_text(openai_client, **GREEDY, max_tokens=40, stop=stop)
    assert "".join(streamed) == "".join(deltas)[:at] and finish == "stop"


def test_n_3_gives_three_indexed_choices(openai_client):
    r = openai_client.chat.completions.create(model=MODEL, messages=MESSAGES, n=3, temperature=1, seed=7,
                                              max_tokens=6, logprobs=True)
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert all(c.message.content and c.finish_reason for c in r.choices)
    assert r.usage.completion_tokens == sum(len(c.logprobs.content) for c in r.choices)
    assert len({c.message.content for c in r.choices}) > 1  # independent samples
    seen = set()
    for chunk in openai_client.chat.completions.create(model=MODEL, messages=MESSAGES, n=3, temperature=1,
                                                       seed=7, max_tokens=6, stream=True):
        seen |= {c.index for c in chunk.choices if c.finish_reason}
    assert seen == {0, 1, 2}


def test_logprobs_shape(openai_client):
    r = openai_client.chat.completions.create(**GREEDY, max_tokens=4, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    assert "".join(t.token for t in content) == r.choices[0].message.content
    for t in content:
        assert t.logprob <= 0 and len(t.top_logprobs) == 3
        assert t.top_logprobs[0].logprob >= t.top_logprobs[-1].logprob
        assert t.top_logprobs[0].token == t.token  # greedy takes the most likely token


def test_logit_bias_bans_and_forces(openai_client, llm):
    first = openai_client.chat.completions.create(**GREEDY, max_tokens=3, logprobs=True)
    first_token = first.choices[0].logprobs.content[0].token
    banned = llm.ids_with_text(first_token)
    assert banned
    r = openai_client.chat.completions.create(**GREEDY, max_tokens=3, logprobs=True,
                                              logit_bias={str(i): -100 for i in banned[:300]})
    assert r.choices[0].logprobs.content[0].token != first_token

    forced = llm.word_token()
    r = openai_client.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=1, seed=3,
                                              max_tokens=4, logit_bias={str(forced): 100})
    assert r.choices[0].message.content == llm.token_text(forced) * 4


def test_text_parts_ignore_eos_and_continuous_usage_like_guidellm(http):
    """guidellm's request: content as text parts, ignore_eos, stream_options.continuous_usage_stats."""
    body = {"model": MODEL, "stream": True, "max_tokens": 6, "ignore_eos": True, "temperature": 0,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Tell me about the sea."}]}],
            "stream_options": {"include_usage": True, "continuous_usage_stats": True}}
    chunks = []
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(json.loads(line[6:]))
    assert all(c["usage"] is not None for c in chunks)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 6
    counts = [c["usage"]["completion_tokens"] for c in chunks]
    assert counts == sorted(counts)


def test_include_usage_final_chunk(openai_client):
    chunks = list(openai_client.chat.completions.create(**GREEDY, max_tokens=5, stream=True,
                                                        stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 5
    assert chunks[-1].usage.total_tokens == chunks[-1].usage.prompt_tokens + 5
    assert all(c.usage is None for c in chunks[:-1])


def test_langchain_chat_openai(adapter):
    from langchain_openai import ChatOpenAI  # noqa: PLC0415
    chat = ChatOpenAI(model=MODEL, base_url=adapter.base_url, api_key="unused", temperature=0,
                      max_completion_tokens=5, stream_usage=True, max_retries=0)
    reply = chat.invoke("Tell me about the sea.")
    assert reply.content and reply.usage_metadata["output_tokens"] == 5
    chunks = list(chat.stream("Tell me about the sea."))
    assert "".join(c.content for c in chunks) == reply.content
    assert sum((c.usage_metadata or {}).get("output_tokens", 0) for c in chunks) == 5


@pytest.mark.asyncio(loop_scope="session")  # the shared async client lives in the session loop
async def test_async_client_concurrent_and_streaming(async_openai_client, openai_client):
    prompts = ["Hi.", "Tell me a long story about ships and the sea, please.", "Why?"]
    expected = [openai_client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": p}],
                                                      temperature=0, max_tokens=12).choices[0].message.content
                for p in prompts]
    results = await asyncio.gather(*(async_openai_client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": p}], temperature=0, max_tokens=12) for p in prompts))
    assert [r.choices[0].message.content for r in results] == expected  # batched together, same greedy text
    stream = await async_openai_client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": prompts[1]}], temperature=0, max_tokens=12, stream=True)
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == expected[1]


def test_client_disconnect_mid_stream_frees_its_slot(adapter, openai_client, llm):
    """Abandon twice as many endless streams as the generator has slots; a later request still gets full service
    quickly. If abandoned streams kept their slots, it would wait for thousands of decode steps."""
    body = {**GREEDY, "stream": True, "ignore_eos": True}  # no max_tokens: the rest of the context window
    t0 = time.perf_counter()
    openai_client.chat.completions.create(**GREEDY, max_tokens=5)
    baseline = time.perf_counter() - t0

    async def abandon(client: httpx.AsyncClient) -> None:
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if '"content":"' in line and '"content":""' not in line:
                    return  # first token seen: hang up

    async def abandon_all() -> None:
        async with httpx.AsyncClient(base_url=adapter.url, timeout=60) as client:
            await asyncio.gather(*(abandon(client) for _ in range(2 * llm.max_batch_size)))

    asyncio.run(abandon_all())
    t0 = time.perf_counter()
    r = openai_client.chat.completions.create(**GREEDY, max_tokens=5)
    after = time.perf_counter() - t0
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 5
    assert after < max(20 * baseline, 3.0), (after, baseline)


BAD = [
    ({"temperature": 2.5}, "temperature"), ({"temperature": -1}, "temperature"),
    ({"top_p": 0}, "top_p"), ({"top_p": 1.5}, "top_p"), ({"n": 0}, "n"), ({"n": 129}, "n"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"presence_penalty": 2.5}, "presence_penalty"), ({"frequency_penalty": -2.5}, "frequency_penalty"),
    ({"logit_bias": {"1": 150}}, "logit_bias"), ({"messages": []}, "messages"),
    ({"max_tokens": 0}, "max_tokens"), ({"max_completion_tokens": 0}, "max_completion_tokens"),
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
]


@pytest.mark.parametrize("change, param", BAD)
def test_bad_input_is_400(openai_client, change, param):
    with pytest.raises(openai.BadRequestError) as exc:
        openai_client.chat.completions.create(**{**GREEDY, **change})
    assert exc.value.status_code == 400 and exc.value.body["param"] == param


def test_limits_of_the_model_are_400(openai_client, llm):
    cases = [({"logit_bias": {str(llm.vocab_size): 1}}, "logit_bias"),
             ({"max_tokens": llm.max_model_len + 1}, "max_tokens"),
             ({"messages": [{"role": "user", "content": "sea " * llm.max_model_len}]}, None)]
    for change, param in cases:
        with pytest.raises(openai.BadRequestError) as exc:
            openai_client.chat.completions.create(**{**GREEDY, **change})
        if param:
            assert exc.value.body["param"] == param
        else:  # prompt too long: the generator names both numbers
            assert str(llm.max_model_len) in exc.value.body["message"]
