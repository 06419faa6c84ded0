"""A mixed, partly abandoned load on every route and both of Triton's own interfaces, as real clients send it.

Each shape is one request as a client makes it: finished, cut mid-stream, abandoned before its answer (a client
timeout), or refused by the model itself (a 400 the model finds, which ends its stream with an error). Long ones
leave out max_tokens, so they would run to the end of the context window if their slot were not freed.
Used by bench/soak.py and by tests/integration/test_stop_after_traffic.py; the models are the demo repository's
(or those the environment names, as the integration suite reads them).
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import httpx
import numpy as np
import openai
import tritonclient.grpc as grpcclient

CHAT_MODEL = os.environ.get("CHAT_MODEL", "tiny-llama-3")
EMBEDDING_MODEL = os.environ.get("EMBEDDING_MODEL", "all-MiniLM-L6-v2")
IMAGE_MODEL = os.environ.get("IMAGE_MODEL", "tiny-sdxl")

HELLO = [{"role": "user", "content": "hello"}]
BAD_SCHEMA = {"type": "json_schema",  # valid for the adapter, refused by the model's grammar compiler
              "json_schema": {"name": "bad", "schema": {"type": "object", "properties": {"a": {"type": "strin"}}}}}
GOOD_SCHEMA = {"type": "json_schema", "json_schema": {"name": "point", "schema": {
    "type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}}}
TOOL = {"type": "function", "function": {"name": "add", "parameters": {
    "type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}}


@dataclass(frozen=True)
class Urls:
    adapter: str        # http://host:port (the OpenAI routes under /v1)
    triton_http: str    # http://host:port
    triton_grpc: str    # host:port


def _client(urls: Urls, timeout: float = 60.0) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{urls.adapter}/v1", api_key="-", max_retries=0, timeout=timeout)


def _abandon(call: Callable[[], object]) -> None:
    """Make the call and give up on it at its (short) timeout: the client goes away mid-generation."""
    try:
        call()
    except (openai.APITimeoutError, httpx.TimeoutException):
        pass


def _cut(stream, after: int = 3) -> None:
    """Read a few events of a stream, then close it (the client goes away)."""
    for i, _ in enumerate(stream):
        if i + 1 >= after:
            break
    stream.close()


def _refused(call: Callable[[], object]) -> None:
    try:
        call()
    except openai.BadRequestError:
        return
    raise AssertionError("the model accepted a request it must refuse")


def chat_shapes(urls: Urls) -> list[Callable[[], None]]:
    c, quick = _client(urls), _client(urls, timeout=0.5)
    chat = c.chat.completions.create
    return [
        lambda: chat(model=CHAT_MODEL, messages=HELLO, n=2, logprobs=True, top_logprobs=2, stop=["e"], max_tokens=16),
        lambda: _cut(chat(model=CHAT_MODEL, messages=HELLO, stream=True, n=3, logprobs=True)),
        lambda: _abandon(lambda: quick.chat.completions.create(model=CHAT_MODEL, messages=HELLO)),
        lambda: _abandon(lambda: quick.chat.completions.create(model=CHAT_MODEL, messages=HELLO, n=4, seed=1)),
        lambda: chat(model=CHAT_MODEL, messages=HELLO, tools=[TOOL], tool_choice="required", max_tokens=48),
        lambda: _cut(chat(model=CHAT_MODEL, messages=HELLO, tools=[TOOL], stream=True), after=2),
        lambda: chat(model=CHAT_MODEL, messages=HELLO, response_format=GOOD_SCHEMA, max_tokens=32),
        lambda: _abandon(lambda: quick.chat.completions.create(model=CHAT_MODEL, messages=HELLO,
                                                               response_format={"type": "json_object"})),
        lambda: _refused(lambda: chat(model=CHAT_MODEL, messages=HELLO, response_format=BAD_SCHEMA)),
        lambda: _refused(lambda: chat(model=CHAT_MODEL, messages=HELLO, response_format=BAD_SCHEMA, stream=True)),
        lambda: _refused(lambda: chat(model=CHAT_MODEL, messages=[{"role": "user", "content": "word " * 3000}])),
    ]


def other_route_shapes(urls: Urls) -> list[Callable[[], None]]:
    c, quick = _client(urls), _client(urls, timeout=0.5)
    return [
        lambda: c.completions.create(model=CHAT_MODEL, prompt="The sea", echo=True, logprobs=2, max_tokens=8),
        lambda: _cut(c.completions.create(model=CHAT_MODEL, prompt="The sea", stream=True, stop=["\n"])),
        lambda: _abandon(lambda: quick.completions.create(model=CHAT_MODEL, prompt="The sea", n=2)),
        lambda: c.embeddings.create(model=EMBEDDING_MODEL, input=["a", "b"]),
        lambda: c.images.generate(model=IMAGE_MODEL, prompt="a cat", size="64x64", n=1),
        lambda: c.models.list(),
    ]


def triton_http_shapes(urls: Urls) -> list[Callable[[], None]]:
    url = f"{urls.triton_http}/v2/models/{CHAT_MODEL}"
    long = {"max_tokens": 2000, "ignore_eos": True}

    def cut_generate_stream() -> None:
        body = {"text_input": "The sea", "stream": True, "parameters": long}
        with httpx.stream("POST", f"{url}/generate_stream", json=body, timeout=60) as response:
            _cut(response.iter_lines(), after=2)

    return [
        lambda: httpx.post(f"{url}/generate", json={"text_input": "The sea", "parameters": {"max_tokens": 8}},
                           timeout=60).raise_for_status(),
        cut_generate_stream,
        lambda: httpx.post(f"{url}/generate", json={"text_input": "x", "parameters": {"n": 99}}, timeout=60),
    ]


def _vllm_inputs(prompt: str, parameters: dict) -> list[grpcclient.InferInput]:
    tensors = {"text_input": (np.array([prompt.encode()], dtype=np.object_), "BYTES"),
               "stream": (np.array([True]), "BOOL"),
               "sampling_parameters": (np.array([json.dumps(parameters).encode()], dtype=np.object_), "BYTES")}
    built = []
    for name, (array, dtype) in tensors.items():
        item = grpcclient.InferInput(name, [1], dtype)
        item.set_data_from_numpy(array)
        built.append(item)
    return built


def triton_grpc_stream(urls: Urls, parameters: dict, cancel_after: int | None) -> None:
    """One generate stream over Triton's gRPC API (tritonclient); `cancel_after` responses: cancel it there."""
    import queue  # noqa: PLC0415

    client = grpcclient.InferenceServerClient(urls.triton_grpc)
    responses: queue.SimpleQueue = queue.SimpleQueue()
    client.start_stream(callback=lambda result, error: responses.put((result, error)))
    try:
        client.async_stream_infer(CHAT_MODEL, _vllm_inputs("The sea", parameters), enable_empty_final_response=True)
        for got in range(1, 10_000):
            result, error = responses.get(timeout=60)
            if error is not None or cancel_after == got:
                break
            if result.get_response().parameters["triton_final_response"].bool_param:
                break
    finally:
        client.stop_stream(cancel_requests=cancel_after is not None)
        client.close()


def triton_grpc_shapes(urls: Urls) -> list[Callable[[], None]]:
    return [
        lambda: triton_grpc_stream(urls, {"max_tokens": 8}, cancel_after=None),
        lambda: triton_grpc_stream(urls, {"max_tokens": 2000, "ignore_eos": True}, cancel_after=2),
    ]


def all_shapes(urls: Urls) -> list[Callable[[], None]]:
    return chat_shapes(urls) + other_route_shapes(urls) + triton_http_shapes(urls) + triton_grpc_shapes(urls)


def drive(urls: Urls, rounds: int = 2, concurrency: int = 8) -> None:
    """Every shape `rounds` times, `concurrency` at once; re-raises the first failure."""
    shapes = all_shapes(urls) * rounds
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(shape) for shape in shapes]:
            future.result()
