"""Llama-3 tool-call parsing, whole and streamed, on the output shapes Llama-3.1/3.3 Instruct produce."""
from __future__ import annotations

import json

import pytest

from adapter.llm.tool_calls import ParsedCall, ToolCallStream, parse_tool_calls

WEATHER = ParsedCall("get_weather", '{"location": "San Francisco, CA", "unit": "celsius"}')
SEARCH = ParsedCall("search", '{"query": "a \\"quoted\\" {brace}", "filters": [1, {"k": []}]}')

# What the models write (Meta's Llama-3.1 prompt-format docs; vLLM's llama3_json parser tests).
SHAPES = [
    ('{"name": "get_weather", "parameters": {"location": "San Francisco, CA", "unit": "celsius"}}', [WEATHER]),
    ('<|python_tag|>{"name": "get_weather", "parameters": {"location": "San Francisco, CA", "unit": "celsius"}}',
     [WEATHER]),
    ('\n\n{"name":"get_weather","arguments":{"location":"San Francisco, CA","unit":"celsius"}}  ', [WEATHER]),
    ('{"name": "get_weather", "parameters": "{\\"location\\": \\"San Francisco, CA\\", \\"unit\\": \\"celsius\\"}"}',
     [WEATHER]),  # arguments already serialized by the model
    ('{"name": "get_weather", "parameters": {"location": "San Francisco, CA", "unit": "celsius"}}; '
     '{"name": "search", "parameters": {"query": "a \\"quoted\\" {brace}", "filters": [1, {"k": []}]}}',
     [WEATHER, SEARCH]),
    ('<|python_tag|>{"name": "get_weather", "parameters": {"location": "San Francisco, CA", "unit": "celsius"}};'
     '<|python_tag|>{"name": "search", "parameters": {"query": "a \\"quoted\\" {brace}", "filters": [1, {"k": []}]}}',
     [WEATHER, SEARCH]),
    ('[{"name": "get_weather", "parameters": {"location": "San Francisco, CA", "unit": "celsius"}}]', [WEATHER]),
    ('{"name": "now", "parameters": {}}', [ParsedCall("now", "{}")]),
]

NOT_CALLS = [
    "The weather in San Francisco is sunny.",
    '{"location": "San Francisco"}',                     # JSON, but not a call
    '{"name": "get_weather", "parameters": {"location": ',  # cut off (max_tokens)
    'Sure! {"name": "get_weather", "parameters": {}}',   # prose first: content
    '{"name": "get_weather", "parameters": {}} and then some text',
    '{"name": "f", "parameters": [1, 2]}',
    '<|python_tag|>brave_search.call(query="weather")',  # built-in tool syntax, not JSON
    "",
]


@pytest.mark.parametrize("text, calls", SHAPES)
def test_parse_whole_output(text, calls):
    assert parse_tool_calls(text) == calls


@pytest.mark.parametrize("text", NOT_CALLS)
def test_anything_else_is_content(text):
    assert parse_tool_calls(text) is None


def replay(text: str, size: int, finish_reason: str = "stop") -> tuple[str, dict[int, dict], str | None]:
    stream, content, calls = ToolCallStream(), "", {}
    pieces = [text[i:i + size] for i in range(0, len(text), size)]
    for piece in pieces:
        got, deltas = stream.feed(piece)
        content += got
        for d in deltas:
            if d.id:  # a call's first delta: id and name, before any of its arguments
                assert d.index not in calls and d.name
                calls[d.index] = {"id": d.id, "name": d.name, "arguments": ""}
            calls[d.index]["arguments"] += d.arguments
    tail, _, reason = stream.finish(finish_reason)
    return content + tail, calls, reason


@pytest.mark.parametrize("size", [1, 2, 5, 1000])
@pytest.mark.parametrize("text, expected", SHAPES[:3] + SHAPES[4:6])
def test_streamed_deltas_assemble_into_the_same_calls(text, expected, size):
    content, calls, reason = replay(text, size)
    assert content == "" and reason == "tool_calls"
    assert [c["name"] for _, c in sorted(calls.items())] == [c.name for c in expected]
    for (_, got), want in zip(sorted(calls.items()), expected):
        assert got["id"].startswith("call_")
        assert json.loads(got["arguments"]) == json.loads(want.arguments)


@pytest.mark.parametrize("size", [1, 3, 1000])
@pytest.mark.parametrize("text", NOT_CALLS[:2] + NOT_CALLS[3:4] + NOT_CALLS[6:])
def test_streamed_content_passes_through_whole(text, size):
    content, calls, reason = replay(text, size)
    assert content == text and calls == {} and reason == "stop"


def test_streamed_call_cut_by_max_tokens_keeps_length():
    content, calls, reason = replay('{"name": "get_weather", "parameters": {"location": "Par', 4, "length")
    assert content == "" and calls[0]["name"] == "get_weather" and calls[0]["arguments"] == '{"location": "Par'
    assert reason == "length"


def test_first_delta_carries_id_and_name_then_only_arguments():
    stream = ToolCallStream()
    _, first = stream.feed('{"name": "get_weather", "parameters": ')
    _, more = stream.feed('{"location": "Paris"}}')
    assert [(d.index, d.name, d.arguments) for d in first] == [(0, "get_weather", "")] and first[0].id
    assert [(d.index, d.id, d.name) for d in more] == [(0, None, None)]
    assert more[0].arguments == '{"location": "Paris"}'
