"""Response assembly and SSE streaming of chat/completions against a fake Triton that follows the contract,
read through the official openai client (so the shapes are the SDK's) and as raw SSE lines."""
from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import openai
import pytest

from adapter.app import create_app
from bench.fake_llm_triton import MODEL, WORDS, FakeRegistry, FakeTriton

TEXT = "".join(WORDS)
MESSAGES = [{"role": "user", "content": "say hello"}]


@pytest.fixture
def fake() -> FakeTriton:
    return FakeTriton()


@pytest.fixture
def app(fake):
    app = create_app()
    app.state.triton, app.state.registry = fake, FakeRegistry()
    return app


@pytest.fixture
async def http(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


@pytest.fixture
def sdk(http) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url="http://t/v1", api_key="x", http_client=http, max_retries=0)


async def sse_events(http: httpx.AsyncClient, path: str, body: dict) -> list:
    """Raw `data:` payloads, [DONE] included, checking the framing on the way."""
    events = []
    async with http.stream("POST", path, json={**body, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line:
                assert line.startswith("data: ")
                events.append(line[6:] if line == "data: [DONE]" else json.loads(line[6:]))
    return events


async def test_chat_json_response(sdk):
    r = await sdk.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert r.id.startswith("chatcmpl-") and r.object == "chat.completion" and r.model == MODEL and r.created > 0
    assert r.choices[0].message.role == "assistant" and r.choices[0].message.content == TEXT
    assert r.choices[0].finish_reason == "stop" and r.choices[0].logprobs is None
    assert r.usage.completion_tokens == len(WORDS)
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


async def test_chat_stream_role_then_content_then_finish_then_done(http):
    events = await sse_events(http, "/v1/chat/completions", {"model": MODEL, "messages": MESSAGES})
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert all("usage" not in c for c in chunks)
    assert chunks[0]["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                                     "finish_reason": None}]
    assert chunks[-1]["choices"] == [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]
    middle = chunks[1:-1]
    assert all(c["choices"][0]["finish_reason"] is None and "role" not in c["choices"][0]["delta"] for c in middle)
    assert "".join(c["choices"][0]["delta"]["content"] for c in middle) == TEXT


async def test_stream_text_equals_json_text_for_both_endpoints(sdk):
    whole = await sdk.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=5)
    stream = await sdk.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=5, stream=True)
    parts, finish = [], None
    async for chunk in stream:
        for c in chunk.choices:
            parts.append(c.delta.content or "")
            finish = c.finish_reason or finish
    assert "".join(parts) == whole.choices[0].message.content and finish == whole.choices[0].finish_reason == "length"

    whole = await sdk.completions.create(model=MODEL, prompt="p")
    stream = await sdk.completions.create(model=MODEL, prompt="p", stream=True)
    assert "".join([c.choices[0].text async for c in stream]) == whole.choices[0].text == TEXT


async def test_include_usage_adds_a_last_chunk_without_choices(http):
    body = {"model": MODEL, "messages": MESSAGES, "stream_options": {"include_usage": True}, "max_tokens": 3}
    events = await sse_events(http, "/v1/chat/completions", body)
    *chunks, last, done = events
    assert done == "[DONE]" and last["choices"] == []
    assert last["usage"]["completion_tokens"] == 3
    assert last["usage"]["total_tokens"] == last["usage"]["prompt_tokens"] + 3
    assert all(c["usage"] is None for c in chunks)


async def test_continuous_usage_stats_put_usage_on_every_chunk(http, fake):
    fake.delay_s = 0.02  # steps arrive apart (steps that arrive together make one chunk)
    body = {"model": MODEL, "prompt": "a b c", "stream_options": {"include_usage": True,
                                                                  "continuous_usage_stats": True}}
    events = await sse_events(http, "/v1/completions", body)
    counts = [e["usage"]["completion_tokens"] for e in events[:-1]]
    assert len(counts) > 2 and counts == sorted(set(counts[:-1])) + [len(WORDS)] and counts[-2] == len(WORDS)
    assert all(e["usage"]["prompt_tokens"] == 3 for e in events[:-1])
    chat = await sse_events(http, "/v1/chat/completions", {**body, "messages": MESSAGES, "max_tokens": 2})
    assert chat[0]["usage"]["completion_tokens"] == 0 and chat[0]["usage"]["prompt_tokens"] > 0  # the role chunk


async def test_max_tokens_gives_length_and_exact_count(sdk):
    r = await sdk.chat.completions.create(model=MODEL, messages=MESSAGES, max_completion_tokens=2)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 2
    assert r.choices[0].message.content == "".join(WORDS[:2])


async def test_n_gives_indexed_choices_streamed_and_not(sdk, http):
    r = await sdk.chat.completions.create(model=MODEL, messages=MESSAGES, n=3)
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert [c.message.content for c in r.choices] == [f"{i}:{TEXT}" for i in range(3)]
    assert r.usage.completion_tokens == 3 * len(WORDS)
    events = await sse_events(http, "/v1/chat/completions", {"model": MODEL, "messages": MESSAGES, "n": 3})
    texts = {i: "" for i in range(3)}
    finished = []
    for e in events[:-1]:
        for c in e["choices"]:
            texts[c["index"]] += c["delta"].get("content", "")
            if c["finish_reason"]:
                finished.append(c["index"])
    assert texts == {i: f"{i}:{TEXT}" for i in range(3)} and sorted(finished) == [0, 1, 2]


async def test_completions_fan_out_prompts_times_n(sdk, fake):
    r = await sdk.completions.create(model=MODEL, prompt=["one", "two words"], n=2, max_tokens=2)
    assert r.id.startswith("cmpl-") and r.object == "text_completion"
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    assert [c.text for c in r.choices] == ["0:Hello,", "1:Hello,"] * 2
    assert r.usage.prompt_tokens == 1 + 2 and r.usage.completion_tokens == 2 * 2 * 2
    assert len(fake.requests) == 2 and all(q["sampling"]["n"] == 2 for q in fake.requests)
    r = await sdk.completions.create(model=MODEL, prompt=[[1, 2], [3]], max_tokens=1)
    assert [q.get("prompt_token_ids") for q in fake.requests[2:]] == [[1, 2], [3]]


async def test_echo_puts_the_prompt_before_the_text(sdk):
    r = await sdk.completions.create(model=MODEL, prompt="Say:", echo=True, max_tokens=2)
    assert r.choices[0].text == "Say:Hello,"
    stream = await sdk.completions.create(model=MODEL, prompt="Say:", echo=True, max_tokens=2, stream=True)
    assert "".join([c.choices[0].text async for c in stream]) == "Say:Hello,"


async def test_chat_logprobs_shape(sdk):
    r = await sdk.chat.completions.create(model=MODEL, messages=MESSAGES, logprobs=True, top_logprobs=3,
                                          max_tokens=4)
    content = r.choices[0].logprobs.content
    assert [t.token for t in content] == WORDS[:4]
    assert all(len(t.top_logprobs) == 3 and t.bytes == list(t.token.encode()) for t in content)
    stream = await sdk.chat.completions.create(model=MODEL, messages=MESSAGES, logprobs=True, max_tokens=4,
                                               stream=True)
    tokens = [t.token async for chunk in stream for c in chunk.choices if c.logprobs for t in c.logprobs.content]
    assert tokens == WORDS[:4]


async def test_completion_legacy_logprobs_shape_and_offsets(sdk):
    r = await sdk.completions.create(model=MODEL, prompt="ab", logprobs=2, echo=True, max_tokens=3)
    lp = r.choices[0].logprobs
    assert lp.tokens == WORDS[:3] and lp.token_logprobs == [-0.5] * 3
    assert lp.top_logprobs == [{WORDS[i]: -0.5, "x": -1.5} for i in range(3)]
    assert lp.text_offset == [2, 7, 8]  # after the echoed "ab": "Hello" (5 chars), "," (1)
    stream = await sdk.completions.create(model=MODEL, prompt="ab", logprobs=2, echo=True, max_tokens=3,
                                          stream=True)
    offsets = [o async for chunk in stream for o in chunk.choices[0].logprobs.text_offset]
    assert offsets == lp.text_offset


async def test_stream_error_after_start_becomes_an_error_event(http, fake):
    async def broken(model, inputs, request_id=""):
        yield {"response": np.array([b'{"choices": [{"index": 0, "text": "a"}]}'], dtype=object)}
        raise RuntimeError("engine died")
    fake.stream = broken
    events = await sse_events(http, "/v1/chat/completions", {"model": MODEL, "messages": MESSAGES})
    assert events[-1] == "[DONE]" and events[-2]["error"]["type"] == "server_error"


async def test_client_disconnect_mid_stream_cancels_the_triton_request(app, fake):
    """Drive the ASGI app directly: the client goes away after two chunks; the fake's stream must be closed."""
    fake.delay_s = 0.02
    body = json.dumps({"model": MODEL, "messages": MESSAGES, "stream": True}).encode()
    sent: list[dict] = []
    gone = asyncio.Event()
    requests = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        if requests:
            return requests.pop()
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)
        if sum(1 for m in sent if m.get("body")) >= 2:
            gone.set()

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
             "query_string": b"", "root_path": "", "headers": [(b"content-type", b"application/json")],
             "server": ("t", 80), "client": ("c", 1), "app": app}
    await asyncio.wait_for(app(scope, receive, send), 5)
    await asyncio.sleep(0.05)
    assert fake.cancelled == 1 and fake.completed == 0
    assert fake.sent < len(WORDS)



async def test_sse_response_closes_its_events_when_sending_fails():
    """ASGI 2.4 servers report a vanished client by failing `send`; the events (and Triton call) must close."""
    from adapter.llm.sse import SSEResponse
    closed = asyncio.Event()

    async def events():
        try:
            for i in range(100):
                yield f"data: {i}\n\n".encode()
        finally:
            closed.set()

    bodies = 0

    async def send(message):
        nonlocal bodies
        bodies += message["type"] == "http.response.body"
        if bodies == 2:
            raise OSError("connection reset")

    async def receive():
        await asyncio.sleep(10)

    response = SSEResponse(events())
    with pytest.raises(Exception):
        await response({"type": "http", "asgi": {"spec_version": "2.4"}}, receive, send)
    assert closed.is_set()


async def test_responses_that_arrived_together_go_out_in_one_chunk(app, fake):
    """A busy loop must not pay one chunk per token: what has arrived is merged and sent at once."""
    body = json.dumps({"model": MODEL, "prompt": "p", "stream": True}).encode()
    requests = [{"type": "http.request", "body": body, "more_body": False}]
    writes: list[bytes] = []

    async def receive():
        if requests:
            return requests.pop()
        await asyncio.sleep(10)
        return {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.body" and message.get("body"):
            writes.append(message["body"])

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/v1/completions", "raw_path": b"/v1/completions",
             "query_string": b"", "root_path": "", "headers": [(b"content-type", b"application/json")],
             "server": ("t", 80), "client": ("c", 1), "app": app}
    await asyncio.wait_for(app(scope, receive, send), 5)
    events = [e[6:] for e in b"".join(writes).split(b"\n\n") if e]
    assert events[-1] == b"[DONE]" and len(writes) <= 2  # the fake sends all its responses at once ...
    chunks = [json.loads(e) for e in events[:-1]]
    assert len(chunks) == 1 and chunks[0]["choices"][0]["text"] == TEXT  # ... so they make one chunk


def test_a_token_with_a_unicode_line_separator_does_not_cut_its_event():
    """httpx's aiter_lines (and httpx-sse on it) splits on U+0085 / U+2028 / U+2029, which JSON may leave raw:
    a frame must stay one line and still carry the exact text."""
    from httpx._decoders import LineDecoder

    from adapter.llm.responses import ResponseMeta
    from adapter.llm.sse import Frames, StreamUsage, event
    text = "a\u2028b\x85c\u2029d"
    frame = Frames(ResponseMeta.new("chatcmpl", MODEL), "chat.completion.chunk", StreamUsage()).frame(
        [{"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": None}])
    for data in (frame, event({"error": {"message": text}})):
        lines = [line for line in LineDecoder().decode(data.decode()) if line]
        assert len(lines) == 1 and lines[0].startswith("data: ")
        assert text in json.dumps(json.loads(lines[0][6:]), ensure_ascii=False)
