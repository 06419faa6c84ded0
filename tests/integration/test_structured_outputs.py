"""Structured outputs and tool calls on the real stack with the random-weights tiny-llama-3: only the grammar
can make its output valid, so every document that parses and validates is the grammar's doing.

Seeds run concurrently (one batch in the generator); every schema is bounded (string lengths, array sizes,
number ranges) so a document always ends well within max_tokens.
"""
from __future__ import annotations

import asyncio
import json
from typing import Annotated, Literal

import httpx
import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

from tests.integration.llm_helpers import MODEL

pytestmark = pytest.mark.integration

SEEDS = range(20)
MAX_TOKENS = 160
MESSAGES = [{"role": "user", "content": "Describe a person as JSON."}]

SCHEMAS = {
    "flat": {"type": "object", "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer", "minimum": 0,
                                                                               "maximum": 9}},
             "required": ["ok", "n"], "additionalProperties": False},
    "enums_and_bounds": {"type": "object", "properties": {
        "color": {"enum": ["red", "green", "blue"]}, "size": {"type": "string", "enum": ["S", "M", "L", "XL"]},
        "count": {"type": "integer", "minimum": -5, "maximum": 120}, "ratio": {"type": "number", "minimum": 0,
                                                                            "maximum": 1}},
        "required": ["color", "size", "count", "ratio"], "additionalProperties": False},
    "bounded_arrays": {"type": "object", "properties": {
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 6}, "minItems": 1, "maxItems": 3},
        "points": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 99}, "minItems": 2,
                   "maxItems": 2}},
        "required": ["tags", "points"], "additionalProperties": False},
    "nested_optional": {"type": "object", "properties": {
        "person": {"type": "object", "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 8},
            "age": {"type": "integer", "minimum": 0, "maximum": 120},
            "nick": {"type": "string", "maxLength": 4}},
            "required": ["name", "age"], "additionalProperties": False},
        "active": {"type": "boolean"}},
        "required": ["person"], "additionalProperties": False},
    "everything": {"type": "object", "$defs": {"item": {"type": "object", "properties": {
        "sku": {"type": "string", "pattern": "^[A-Z]{2}[0-9]{3}$"},
        "qty": {"type": "integer", "minimum": 1, "maximum": 50},
        "kind": {"enum": ["book", "pen", None]},
        "price": {"type": "number", "minimum": 0.5, "maximum": 99}},
        "required": ["sku", "qty"], "additionalProperties": False}},
        "properties": {
            "order": {"type": "object", "properties": {
                "items": {"type": "array", "items": {"$ref": "#/$defs/item"}, "minItems": 1, "maxItems": 2},
                "note": {"type": ["string", "null"], "maxLength": 5},
                "rush": {"type": "boolean"}},
                "required": ["items", "rush"], "additionalProperties": False},
            "id": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 999},
                             {"type": "string", "pattern": "^[a-f]{4}$"}]}},
        "required": ["order", "id"], "additionalProperties": False},
}

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "minLength": 1, "maxLength": 10},
        "unit": {"enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"], "additionalProperties": False}}}
ADD = {"type": "function", "function": {
    "name": "add", "description": "Add two integers",
    "parameters": {"type": "object", "properties": {"a": {"type": "integer", "minimum": -99, "maximum": 99},
                                                    "b": {"type": "integer", "minimum": -99, "maximum": 99}},
                   "required": ["a", "b"], "additionalProperties": False}}}
TOOLS = {"get_weather": WEATHER, "add": ADD}


def response_format(name: str) -> dict:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": SCHEMAS[name], "strict": True}}


async def stream_chat(client: openai.AsyncOpenAI, **kwargs) -> tuple[str, dict[int, dict], str | None]:
    """(content, tool calls assembled from their deltas by index, finish_reason) of a streamed completion."""
    content, calls, finish = [], {}, None
    async for chunk in await client.chat.completions.create(stream=True, **kwargs):
        for choice in chunk.choices:
            delta = choice.delta
            content.append(delta.content or "")
            for call in delta.tool_calls or ():
                entry = calls.setdefault(call.index, {"id": None, "name": None, "arguments": ""})
                if call.id:
                    assert entry["id"] is None and call.function.name, "id and name come once, first"
                    entry["id"], entry["name"] = call.id, call.function.name
                entry["arguments"] += call.function.arguments or ""
            finish = choice.finish_reason or finish
    return "".join(content), calls, finish


async def one_json(client: openai.AsyncOpenAI, stream: bool, seed: int, **kwargs) -> tuple[str, str | None]:
    kwargs = {"model": MODEL, "messages": MESSAGES, "seed": seed, "max_tokens": MAX_TOKENS, **kwargs}
    if stream:
        content, calls, finish = await stream_chat(client, **kwargs)
        assert not calls
        return content, finish
    r = await client.chat.completions.create(**kwargs)
    return r.choices[0].message.content, r.choices[0].finish_reason


@pytest.mark.parametrize("name", list(SCHEMAS))
async def test_json_schema_output_always_validates(async_openai_client, name):
    for stream in (False, True):
        results = await asyncio.gather(*(one_json(async_openai_client, stream, seed,
                                                  response_format=response_format(name)) for seed in SEEDS))
        for content, finish in results:
            assert finish == "stop", (stream, content)
            jsonschema.validate(json.loads(content), SCHEMAS[name])


async def test_json_schema_composes_with_n_logprobs_stop_and_seed(async_openai_client):
    kwargs = {"model": MODEL, "messages": MESSAGES, "seed": 7, "max_tokens": MAX_TOKENS, "n": 3, "logprobs": True,
              "top_logprobs": 2, "response_format": response_format("nested_optional")}
    first = await async_openai_client.chat.completions.create(**kwargs)
    again = await async_openai_client.chat.completions.create(**kwargs)
    assert [c.message.content for c in first.choices] == [c.message.content for c in again.choices]  # seed
    for choice in first.choices:
        jsonschema.validate(json.loads(choice.message.content), SCHEMAS["nested_optional"])
        tokens = "".join(t.token for t in choice.logprobs.content)
        assert tokens.startswith(choice.message.content)  # the end-of-turn token adds no text
        assert all(t.logprob > -9999 for t in choice.logprobs.content)  # sampled tokens were allowed
    # A stop string ends the document early: what came before it is returned, finish_reason stop.
    r = await async_openai_client.chat.completions.create(**{**kwargs, "n": 1, "logprobs": False,
                                                             "top_logprobs": None, "stop": ['"age"']})
    content = r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop" and content.startswith("{") and '"age"' not in content
    with pytest.raises(ValueError):
        json.loads(content)


async def test_json_cut_by_max_tokens_ends_with_length(async_openai_client):
    for stream in (False, True):
        content, finish = await one_json(async_openai_client, stream, 3, max_tokens=4,
                                         response_format=response_format("everything"))
        assert finish == "length" and content.startswith("{")


async def test_json_object_mode_and_completions_extension(async_openai_client):
    r = await async_openai_client.chat.completions.create(model=MODEL, messages=MESSAGES, seed=1, max_tokens=12,
                                                          response_format={"type": "json_object"})
    assert r.choices[0].message.content.startswith("{")
    c = await async_openai_client.completions.create(model=MODEL, prompt="JSON:", seed=2, max_tokens=MAX_TOKENS,
                                                     extra_body={"response_format": response_format("flat")})
    assert c.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(c.choices[0].text), SCHEMAS["flat"])


@pytest.mark.parametrize("schema, part", [
    ({"type": "object", "properties": {"a": {"type": "strng"}}}, "properties.a.type"),
    ({"type": "object", "properties": {"a": {"type": "string", "pattern": "(?<=x)a"}}}, "Lookbehind"),
])
def test_schema_the_engine_cannot_take_is_400_before_generation(http: httpx.Client, schema, part):
    body = {"model": MODEL, "messages": MESSAGES, "stream": True,
            "response_format": {"type": "json_schema", "json_schema": {"name": "bad", "schema": schema}}}
    r = http.post("/v1/chat/completions", json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == "response_format" and part in error["message"], error


async def one_call_set(client: openai.AsyncOpenAI, stream: bool, seed: int, **kwargs) -> tuple[list, str | None]:
    """[(name, arguments JSON text)] and finish_reason of one tool-calling completion."""
    kwargs = {"model": MODEL, "messages": [{"role": "user", "content": "Weather in Paris?"}], "seed": seed,
              "max_tokens": MAX_TOKENS, "tools": [WEATHER, ADD], **kwargs}
    if stream:
        content, calls, finish = await stream_chat(client, **kwargs)
        assert content == "" and all(c["id"] for c in calls.values())
        return [(c["name"], c["arguments"]) for _, c in sorted(calls.items())], finish
    r = await client.chat.completions.create(**kwargs)
    message = r.choices[0].message
    assert message.content is None and all(c.id and c.type == "function" for c in message.tool_calls)
    return [(c.function.name, c.function.arguments) for c in message.tool_calls], r.choices[0].finish_reason


@pytest.mark.parametrize("tool_choice, allowed, parallel", [
    ({"type": "function", "function": {"name": "add"}}, {"add"}, False),
    ("required", {"get_weather", "add"}, True),
    ("required", {"get_weather", "add"}, False),
])
async def test_forced_tool_calls_are_always_valid(async_openai_client, tool_choice, allowed, parallel):
    for stream in (False, True):
        results = await asyncio.gather(*(one_call_set(async_openai_client, stream, seed, tool_choice=tool_choice,
                                                      parallel_tool_calls=parallel) for seed in SEEDS))
        for calls, finish in results:
            assert finish == "tool_calls" and calls, (stream, calls)
            assert parallel or len(calls) == 1
            for name, arguments in calls:
                assert name in allowed
                jsonschema.validate(json.loads(arguments), TOOLS[name]["function"]["parameters"])


async def test_conversation_with_tool_results_is_accepted(async_openai_client):
    messages = [
        {"role": "system", "content": "You can call tools."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature": 21}'},
    ]
    r = await async_openai_client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER],
                                                          max_tokens=8, seed=0)
    assert r.choices[0].finish_reason in ("stop", "length", "tool_calls")
    assert r.usage.prompt_tokens > 40  # the tool definitions, the call and its result are in the prompt


async def test_auto_falls_back_to_content(async_openai_client):
    r = await async_openai_client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=[WEATHER],
                                                          max_tokens=8, seed=0, temperature=0)
    message = r.choices[0].message
    text = message.content or ""
    assert message.tool_calls is None or r.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls or not text.lstrip().startswith('{"name"')


class Person(BaseModel):
    """A person (the clients below turn this into a strict JSON schema or a function)."""
    name: str = Field(min_length=1, max_length=8)
    age: int = Field(ge=0, le=120)
    color: Literal["red", "green", "blue"]


def chat_model(adapter):
    from langchain_openai import ChatOpenAI  # noqa: PLC0415
    return ChatOpenAI(model=MODEL, base_url=adapter.base_url, api_key="unused", max_tokens=MAX_TOKENS, seed=5,
                      max_retries=0)


def test_openai_sdk_parse(openai_client):
    r = openai_client.chat.completions.parse(model=MODEL, messages=MESSAGES, response_format=Person, seed=3,
                                             max_tokens=MAX_TOKENS)
    assert isinstance(r.choices[0].message.parsed, Person)


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_langchain_with_structured_output(adapter, method):
    person = chat_model(adapter).with_structured_output(Person, method=method).invoke("Describe a person.")
    assert isinstance(person, Person)


@pytest.mark.parametrize("tool_choice", ["add", "any"])
def test_langchain_bind_tools(adapter, tool_choice):
    def add(a: Annotated[int, Field(ge=-99, le=99)], b: Annotated[int, Field(ge=-99, le=99)]) -> int:
        """Add two integers."""
        return a + b

    message = chat_model(adapter).bind_tools([add], tool_choice=tool_choice).invoke("What is 2 + 3?")
    assert message.tool_calls and all(call["name"] == "add" for call in message.tool_calls)
    for call in message.tool_calls:
        assert call["id"] and set(call["args"]) == {"a", "b"} and add(**call["args"]) == sum(call["args"].values())
