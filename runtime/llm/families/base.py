"""What a model family is: the chat format its checkpoints were trained on, in one value.

A family names its chat template, its special and stop tokens, how it writes a tool call (the grammar forces that
shape) and how such text is read back into OpenAI `tool_calls` (whole, or as streamed deltas). Everything else in
the stack is family-blind: it asks the family of the model it serves (runtime/llm/families/__init__.py).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Callable, Protocol


@dataclass(frozen=True)
class ParsedCall:
    name: str
    arguments: str  # a JSON object as text, as OpenAI's function.arguments


@dataclass
class CallDelta:
    """One streamed piece of a tool call: the first carries id and name, the next ones argument text."""
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


class ToolCallStream(Protocol):
    """Per choice: turns streamed text into content or tool-call deltas, as OpenAI streams them."""

    def feed(self, text: str) -> tuple[str, list[CallDelta]]:
        """(content to send now, tool-call deltas to send now)."""

    def finish(self, finish_reason: str | None) -> tuple[str, list[CallDelta], str | None]:
        """At the choice's end: the content still held, last deltas, and the finish_reason to report."""


def json_value_end(text: str, start: int) -> int | None:
    """Index just past the JSON value starting at text[start] (an object or array: bracket depth, strings
    skipped), or None while it is incomplete. Scalars end at the next `,` or `}` outside a string."""
    depth, in_string, escaped = 0, False, False
    for i in range(start, len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            if depth == 0:
                return i
            depth -= 1
            if depth == 0:
                return i + 1
        elif ch == "," and depth == 0:
            return i
    return None


@dataclass(frozen=True)
class ToolCallFormat:
    """How the family writes one call to a function, as text around its JSON arguments: `begin % name`, the
    arguments object, `end`; parallel calls joined by `separator`. The grammar builds its tool-call tag from this."""
    begin: str
    end: str
    separator: str

    def call_begin(self, name: str) -> str:
        return self.begin % name


@dataclass(frozen=True)
class ModelFamily:
    name: str                         # the registry key; config.pbtxt's `model_family` parameter
    model_types: frozenset[str]       # config.json `model_type` values whose checkpoints speak this format
    chat_template: str                # jinja, rendered by transformers' apply_chat_template
    bos_token: str
    eos_token: str                    # the tokenizer's eos: the end of an assistant turn
    stop_tokens: tuple[str, ...]      # every token that ends generation
    special_tokens: tuple[str, ...]   # named control tokens of the chat format (ids come from the tokenizer)
    tool_calls: ToolCallFormat
    parse_tool_calls: Callable[[str], list[ParsedCall] | None]  # whole text -> its calls, None when not only calls
    tool_call_stream: Callable[[], ToolCallStream]              # a fresh streaming parser for one choice
