"""Llama-3 Instruct (3.1, 3.2, 3.3): chat template, special and stop tokens, JSON tool calls and their parser.

Llama-3.1/3.3 Instruct answer a custom tool with `{"name": "f", "parameters": {...}}` (sometimes after
`<|python_tag|>`, sometimes `"arguments"` instead of `"parameters"`), several calls joined by `;` (or given as
a JSON list). Anything else is plain content. The grammar forces the canonical form: `; ` between calls, the
separators real Llama models write.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import regex

from runtime.llm.families.base import (CallDelta, ModelFamily, ParsedCall, ToolCallFormat, json_value_end,
                                       new_call_id)
from runtime.llm.families.llama3_template import LLAMA_3_1_CHAT_TEMPLATE

BOS, END_OF_TEXT, EOM, EOT, PYTHON_TAG = ("<|begin_of_text|>", "<|end_of_text|>", "<|eom_id|>", "<|eot_id|>",
                                          "<|python_tag|>")
START_HEADER, END_HEADER = "<|start_header_id|>", "<|end_header_id|>"
# A document ends with <|end_of_text|>, a builtin tool call with <|eom_id|>, a turn with <|eot_id|>: all stop
# (in the order of Llama-3.1 Instruct's generation_config).
STOP_TOKENS = (END_OF_TEXT, EOM, EOT)
TOOL_CALLS = ToolCallFormat(begin='{"name": "%s", "parameters": ', end="}", separator="; ")

_ARGS_KEYS = ("parameters", "arguments")
# The head of one call, up to where its arguments value starts (partial matching tells "not yet" from "never").
_HEAD = regex.compile(r'\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"(?:parameters|arguments)"\s*:\s*')
_CLOSE = regex.compile(r"\s*\}")
_GAP = regex.compile(r'(?:\s|;|,|' + regex.escape(PYTHON_TAG) + r')*')


def parse_tool_calls(text: str) -> list[ParsedCall] | None:
    """Every call in `text`, or None when the text is not (only) tool calls."""
    body = _strip_tag(text)
    if not body.startswith(("{", "[")):
        return None
    try:
        items = _json_values(body)
    except ValueError:
        return None
    if len(items) == 1 and isinstance(items[0], list):
        items = items[0]
    calls = [_call(item) for item in items]
    return calls if calls and all(c is not None for c in calls) else None


def _strip_tag(text: str) -> str:
    body = text.strip()
    return body[len(PYTHON_TAG):].lstrip() if body.startswith(PYTHON_TAG) else body


def _json_values(body: str) -> list:
    """JSON values separated by `;`, `,` or whitespace (raises ValueError on anything else)."""
    decoder, values, pos = json.JSONDecoder(), [], 0
    while pos < len(body):
        value, pos = decoder.raw_decode(body, pos)
        values.append(value)
        pos = _GAP.match(body, pos).end()
    return values


def _call(item: object) -> ParsedCall | None:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        return None
    args = next((item[k] for k in _ARGS_KEYS if k in item), {})
    if isinstance(args, str):  # some fine-tunes put the arguments in a JSON string already
        try:
            args = json.loads(args)
        except ValueError:
            return None
    if not isinstance(args, dict) or set(item) - {"name", *_ARGS_KEYS}:
        return None
    return ParsedCall(item["name"], json.dumps(args, ensure_ascii=False))


@dataclass
class LlamaToolCallStream:
    """Per choice (a ToolCallStream): turns streamed text into content or tool-call deltas, as OpenAI streams them (index, id and
    name first, then argument fragments). Text is held only while it may still be the head of a call."""
    buffer: str = ""
    mode: str = "undecided"  # -> "content" | "calls"
    calls: int = 0           # calls whose head was sent
    _pos: int = 0            # where the current call (or the gap before it) starts in buffer
    _args_from: int = -1     # where the current call's arguments start; -1 before its head
    _args_sent: int = 0      # how far its arguments were sent
    ids: list[str] = field(default_factory=list)

    def feed(self, text: str) -> tuple[str, list[CallDelta]]:
        """(content to send now, tool-call deltas to send now)."""
        if self.mode == "content":
            return text, []
        self.buffer += text
        if self.mode == "undecided":
            if PYTHON_TAG.startswith(self.buffer.lstrip()):  # nothing yet, or maybe the tag arriving in pieces
                return "", []
            head = _strip_tag(self.buffer)
            if not head:
                return "", []
            if not head.startswith("{"):
                return self._to_content()
            self.mode, self._pos = "calls", _GAP.match(self.buffer).end()
        return self._advance()

    def finish(self, finish_reason: str | None) -> tuple[str, list[CallDelta], str | None]:
        """At the choice's end: what was held, and the finish_reason (`tool_calls` after complete calls)."""
        if self.mode != "calls" or self.calls == 0:
            content, _ = self._to_content() if self.mode != "content" else ("", [])
            return content, [], finish_reason
        complete = self._args_from < 0 and parse_tool_calls(self.buffer) is not None
        return "", [], "tool_calls" if finish_reason == "stop" and complete else finish_reason

    def _to_content(self) -> tuple[str, list[CallDelta]]:
        self.mode, held, self.buffer = "content", self.buffer, ""
        return held, []

    def _advance(self) -> tuple[str, list[CallDelta]]:
        out: list[CallDelta] = []
        while True:
            if self._args_from < 0:
                m = _HEAD.match(self.buffer, _GAP.match(self.buffer, self._pos).end(), partial=True)
                if m is None or m.partial:
                    if m is None and self.calls == 0:
                        return self._to_content()
                    return "", out
                self.ids.append(new_call_id())
                out.append(CallDelta(self.calls, self.ids[-1], json.loads(f'"{m.group(1)}"')))
                self.calls += 1
                self._args_from = self._args_sent = m.end()
            while self._args_from < len(self.buffer) and self.buffer[self._args_from].isspace():
                self._args_from += 1
            self._args_sent = max(self._args_sent, self._args_from)
            end = json_value_end(self.buffer, self._args_from)
            stop = len(self.buffer) if end is None else end
            if stop > self._args_sent:
                out.append(CallDelta(self.calls - 1, arguments=self.buffer[self._args_sent:stop]))
                self._args_sent = stop
            if end is None:
                return "", out
            close = _CLOSE.match(self.buffer, end)
            if close is None:
                return "", out
            self._pos, self._args_from = close.end(), -1


FAMILY = ModelFamily(
    name="llama3", model_types=frozenset({"llama"}), chat_template=LLAMA_3_1_CHAT_TEMPLATE, bos_token=BOS,
    eos_token=EOT, stop_tokens=STOP_TOKENS, special_tokens=(BOS, END_OF_TEXT, START_HEADER, END_HEADER, EOM, EOT,
                                                            PYTHON_TAG),
    tool_calls=TOOL_CALLS, parse_tool_calls=parse_tool_calls, tool_call_stream=LlamaToolCallStream)
