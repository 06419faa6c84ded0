"""Tool calls in generated text -> OpenAI `tool_calls`: the model family's parser reads them
(runtime/llm/families). The family comes from the served model's `model_family` parameter; callers that do not
pass one get the default family's parser."""
from __future__ import annotations

from runtime.llm.families import DEFAULT_FAMILY
from runtime.llm.families.base import CallDelta, ModelFamily, ParsedCall, new_call_id
from runtime.llm.families.base import ToolCallStream as ToolCallStreamProtocol

__all__ = ["CallDelta", "ParsedCall", "ToolCallStream", "new_call_id", "parse_tool_calls"]


def parse_tool_calls(text: str, family: ModelFamily = DEFAULT_FAMILY) -> list[ParsedCall] | None:
    """Every call in `text`, or None when the text is not (only) tool calls."""
    return family.parse_tool_calls(text)


def ToolCallStream(family: ModelFamily = DEFAULT_FAMILY) -> ToolCallStreamProtocol:  # noqa: N802  (used as a class)
    """A fresh streaming parser for one choice."""
    return family.tool_call_stream()
