"""Assembling OpenAI responses from generation steps: whole (JSON) here, chunk by chunk in adapter.llm.sse."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from adapter.llm.generation import Generation, Step
from adapter.llm.protocol import (ChatChoice, ChatCompletionResponse, ChatLogprobs, ChatResponseMessage,
                                  CompletionChoice, CompletionLogprobs, CompletionResponse, PromptTokensDetails,
                                  TokenLogprob, ToolCall, ToolCallFunction, Usage)
from adapter.llm.tool_calls import new_call_id, parse_tool_calls
from runtime.llm.families.base import ModelFamily


@dataclass(frozen=True)
class ResponseMeta:
    id: str
    created: int
    model: str

    @classmethod
    def new(cls, prefix: str, model: str) -> "ResponseMeta":
        return cls(f"{prefix}-{uuid.uuid4().hex}", int(time.time()), model)


def usage_of(counts: Step | Generation, completion_tokens: int | None = None) -> Usage:
    """The OpenAI usage of a step or a whole generation (completion_tokens: instead of theirs)."""
    completion = counts.completion_tokens if completion_tokens is None else completion_tokens
    return Usage(prompt_tokens=counts.prompt_tokens, completion_tokens=completion,
                 total_tokens=counts.prompt_tokens + completion,
                 prompt_tokens_details=PromptTokensDetails(cached_tokens=counts.cached_tokens))


def chat_logprobs(entries: list[dict[str, Any]] | None) -> ChatLogprobs | None:
    return None if entries is None else ChatLogprobs(content=[TokenLogprob(**e) for e in entries])


def legacy_logprobs(entries: list[dict[str, Any]], text_offset: int) -> CompletionLogprobs:
    """Chat-shaped token logprobs -> the completions API's parallel lists; offsets count from text_offset."""
    out = CompletionLogprobs()
    for entry in entries:
        out.tokens.append(entry["token"])
        out.token_logprobs.append(entry["logprob"])
        out.top_logprobs.append({t["token"]: t["logprob"] for t in entry.get("top_logprobs") or ()})
        out.text_offset.append(text_offset)
        text_offset += len(entry["token"])
    return out


@dataclass
class _Choice:
    text: list[str] = field(default_factory=list)
    logprobs: list[dict[str, Any]] | None = None
    finish_reason: str | None = None


async def _collect(generation: Generation, want_logprobs: bool) -> list[_Choice]:
    choices = [_Choice(logprobs=[] if want_logprobs else None) for _ in range(generation.num_choices)]
    async for step in generation.steps():
        for delta in step.choices:
            choice = choices[delta.index]
            choice.text.append(delta.text)
            if delta.logprobs and choice.logprobs is not None:
                choice.logprobs.extend(delta.logprobs)
            choice.finish_reason = delta.finish_reason or choice.finish_reason
    return choices


def chat_message(text: str, finish_reason: str,
                 tool_family: ModelFamily | None) -> tuple[ChatResponseMessage, str]:
    """The assistant message and its finish_reason. tool_family: the served model's family when tools were
    offered (its parser reads the text; calls become tool_calls), None when the text is content."""
    calls = parse_tool_calls(text, tool_family) if tool_family else None
    if not calls:
        return ChatResponseMessage(content=text), finish_reason
    tool_calls = [ToolCall(id=new_call_id(), function=ToolCallFunction(name=c.name, arguments=c.arguments))
                  for c in calls]
    return ChatResponseMessage(tool_calls=tool_calls), "tool_calls" if finish_reason == "stop" else finish_reason


async def chat_response(generation: Generation, meta: ResponseMeta, logprobs: bool,
                        tool_family: ModelFamily | None = None) -> ChatCompletionResponse:
    out = []
    for i, c in enumerate(await _collect(generation, logprobs)):
        message, finish_reason = chat_message("".join(c.text), c.finish_reason, tool_family)
        out.append(ChatChoice(index=i, finish_reason=finish_reason, message=message,
                              logprobs=chat_logprobs(c.logprobs)))
    return ChatCompletionResponse(id=meta.id, created=meta.created, model=meta.model, choices=out,
                                  usage=usage_of(generation))


async def completion_response(generation: Generation, meta: ResponseMeta, logprobs: bool) -> CompletionResponse:
    choices = await _collect(generation, logprobs)
    out = []
    for i, c in enumerate(choices):
        text = "".join(c.text)
        # Generated tokens follow the echoed prompt, so their offsets start after it.
        lp = None if c.logprobs is None else legacy_logprobs(c.logprobs, len(generation.echoed(i)))
        out.append(CompletionChoice(index=i, text=text, finish_reason=c.finish_reason, logprobs=lp))
    return CompletionResponse(id=meta.id, created=meta.created, model=meta.model, choices=out,
                              usage=usage_of(generation))
