"""Wire models of /v1/chat/completions and /v1/completions, fields ordered like the OpenAI reference.

Extensions beyond OpenAI are marked `# extension`. `to_generation_request()` turns a request into the
generator's contract (runtime/llm/protocol.py: GenerationRequest, docs/llm_model_interface.md) once; its
`validate(config)` holds every rule of a request (the generator applies the same to direct Triton callers), and
`client_error` maps a broken rule to a 400 naming this endpoint's parameter. The pydantic bounds here are the
contract's constants, so the OpenAPI schema shows them.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

import json

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator,
                      model_serializer, model_validator)

from adapter.errors import OpenAIError, invalid_request
from adapter.protocol import OpenAIRequest
from runtime.errors import ClientError
from runtime.llm.protocol import (MAX_N, MAX_PENALTY, MAX_TEMPERATURE, MAX_TOP_LOGPROBS, GenerationRequest,
                                  SamplingParams, parse_logit_bias, parse_stop)

FinishReason = Literal["stop", "length", "tool_calls"]
Penalty = Annotated[float, Field(ge=-MAX_PENALTY, le=MAX_PENALTY)]


class StreamOptions(BaseModel):
    include_usage: bool = False
    continuous_usage_stats: bool = False  # extension (vLLM; sent by guidellm): usage on every chunk


class TextContentPart(BaseModel):
    type: Literal["text"]
    text: str


# ---- tools and structured outputs -------------------------------------------------------------------------

class FunctionDefinition(BaseModel):
    name: str = Field(pattern=r"^[a-zA-Z0-9_.-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None  # JSON Schema of the arguments; absent = no arguments
    strict: bool | None = None                # always enforced by the grammar under required / named choice


class ChatTool(BaseModel):
    type: Literal["function"]
    function: FunctionDefinition


class _FunctionName(BaseModel):
    name: str


class NamedToolChoice(BaseModel):
    type: Literal["function"]
    function: _FunctionName


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class ToolCallFunction(BaseModel):
    name: str
    arguments: str  # JSON text


class ToolCall(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: ToolCallFunction


class JsonSchemaSpec(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None  # the grammar enforces the schema either way


class ResponseFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> "ResponseFormat":
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("`json_schema` is required when type is json_schema")
        return self

    def guide(self) -> dict[str, Any] | None:
        """The generator's guide (runtime.llm.grammar.Guide) for this format; None for free text."""
        if self.type == "json_object":
            return {"type": "json_object"}
        if self.type == "json_schema":
            return {"type": "json_schema", "schema": self.json_schema.schema_ or {"type": "object"}}
        return None


class ChatMessage(BaseModel):
    # "developer" is OpenAI's newer name for "system".
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None  # assistant turns that called tools
    tool_call_id: str | None = None           # tool turns: which call this result answers

    @model_validator(mode="after")
    def _tool_fields(self) -> "ChatMessage":
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("messages with role 'tool' must have a `tool_call_id`")
        for call in self.tool_calls or ():
            try:
                json.loads(call.function.arguments)
            except ValueError as exc:
                raise ValueError(f"tool call {call.id}: `function.arguments` is not JSON: {exc}") from exc
        return self

    def flat(self) -> dict[str, Any]:
        """The message as chat templates take it: content as one string, tool-call arguments as objects."""
        content = self.content or ""
        if isinstance(content, list):
            content = "\n".join(part.text for part in content)  # vLLM joins text parts the same way
        out: dict[str, Any] = {"role": "system" if self.role == "developer" else self.role, "content": content}
        if self.tool_calls:
            out["tool_calls"] = [{"id": c.id, "type": "function", "function": {
                "name": c.function.name, "arguments": json.loads(c.function.arguments)}} for c in self.tool_calls]
        if self.tool_call_id:
            out["tool_call_id"] = self.tool_call_id
        return out


class _SamplingRequest(OpenAIRequest):
    """Fields and checks shared by both endpoints (each subclass lists them in its own docs order)."""

    @field_validator("stream_options", check_fields=False)
    @classmethod
    def _only_when_streaming(cls, options: StreamOptions | None, info: ValidationInfo) -> StreamOptions | None:
        if options is not None and not info.data.get("stream"):  # OpenAI and vLLM answer 400 too
            raise ValueError("`stream_options` can only be given when `stream` is true")
        return options

    def _sampling(self, max_tokens: int | None, logprobs: bool, top_logprobs: int) -> SamplingParams:
        """Raises ClientError for a logit_bias key that is no token id."""
        return SamplingParams(
            temperature=1.0 if self.temperature is None else self.temperature,
            top_p=1.0 if self.top_p is None else self.top_p,
            top_k=max(self.top_k or 0, 0),  # vLLM: 0 and -1 both mean the whole vocabulary
            presence_penalty=self.presence_penalty or 0.0, frequency_penalty=self.frequency_penalty or 0.0,
            logit_bias=parse_logit_bias(self.logit_bias), seed=self.seed, n=self.n or 1,
            max_tokens=max_tokens,  # None: the generator uses the rest of the context window
            stop=parse_stop(self.stop), ignore_eos=bool(self.ignore_eos), min_tokens=self.min_tokens or 0,
            logprobs=logprobs, top_logprobs=top_logprobs)

    def client_error(self, exc: ClientError) -> OpenAIError:
        """The contract's error as this endpoint's 400: the param by the name the client sent."""
        return invalid_request(exc.message, self.param_as_sent(exc.param), exc.code)

    def param_as_sent(self, param: str | None) -> str | None:
        """The contract's name of a field (`max_tokens`, `top_logprobs`) as this client sent it."""
        return self._param_names().get(param, param)

    def _param_names(self) -> dict[str | None, str]:
        return {}

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and (self.stream_options.include_usage
                                             or self.stream_options.continuous_usage_stats))

    @property
    def continuous_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.continuous_usage_stats)


class ChatCompletionRequest(_SamplingRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    model: str
    frequency_penalty: Penalty | None = 0.0
    logit_bias: dict[str, float] | None = None
    logprobs: bool | None = False
    max_completion_tokens: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)  # deprecated by OpenAI in favour of max_completion_tokens
    n: int | None = Field(default=1, ge=1, le=MAX_N)
    parallel_tool_calls: bool | None = True
    presence_penalty: Penalty | None = 0.0
    response_format: ResponseFormat | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=1.0, ge=0.0, le=MAX_TEMPERATURE)
    tools: list[ChatTool] | None = None  # before tool_choice, whose check reads it
    tool_choice: ToolChoice | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS)
    top_p: float | None = Field(default=1.0, gt=0.0, le=1.0)
    user: str | None = None
    ignore_eos: bool | None = False  # extension (vLLM; sent by guidellm): generate past EOS up to max_tokens
    min_tokens: int | None = Field(default=0, ge=0)  # extension (vLLM, TensorRT-LLM; sent by aiperf)
    top_k: int | None = Field(default=None, ge=-1)  # extension (vLLM): sample among the k most likely tokens

    @field_validator("top_logprobs")
    @classmethod
    def _needs_logprobs(cls, top: int | None, info: ValidationInfo) -> int | None:
        if top and not info.data.get("logprobs"):
            raise ValueError("`logprobs` must be true when `top_logprobs` is used")
        return top

    @field_validator("tool_choice")
    @classmethod
    def _choice_fits_tools(cls, choice: ToolChoice | None, info: ValidationInfo) -> ToolChoice | None:
        names = {t.function.name for t in info.data.get("tools") or ()}
        forced = choice == "required" or isinstance(choice, NamedToolChoice)
        if forced and not names:
            raise ValueError("`tool_choice` requires `tools`")
        if isinstance(choice, NamedToolChoice) and choice.function.name not in names:
            raise ValueError(f"`tool_choice` names function {choice.function.name!r}, which is not in `tools`")
        fmt = info.data.get("response_format")
        if forced and fmt is not None and fmt.type != "text":
            raise ValueError("a required or named `tool_choice` cannot be combined with a JSON `response_format`")
        return choice

    @property
    def parses_tool_calls(self) -> bool:
        """Whether the output is read as tool calls (tools given and tool_choice not none)."""
        return bool(self.tools) and self.tool_choice != "none"

    @property
    def forced_tools(self) -> list[ChatTool] | None:
        """The functions the grammar must call (required: any of them; named: that one); None otherwise."""
        choice, tools = self.tool_choice, self.tools or []
        if isinstance(choice, NamedToolChoice):
            return [t for t in tools if t.function.name == choice.function.name]
        return tools if choice == "required" else None

    def guide(self) -> dict[str, Any] | None:
        forced = self.forced_tools
        if forced is not None:
            named = isinstance(self.tool_choice, NamedToolChoice)
            return {"type": "tool_calls", "parallel": bool(self.parallel_tool_calls) and not named,
                    "tools": [{"name": t.function.name, "parameters": t.function.parameters} for t in forced]}
        return self.response_format.guide() if self.response_format else None

    @property
    def max_tokens_param(self) -> str:
        return "max_completion_tokens" if self.max_completion_tokens is not None else "max_tokens"

    @property
    def effective_max_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens

    def _param_names(self) -> dict[str | None, str]:
        return {"max_tokens": self.max_tokens_param}

    def to_generation_request(self) -> GenerationRequest:
        """The generator's request (raises ClientError: see client_error)."""
        sampling = self._sampling(self.effective_max_tokens, bool(self.logprobs), self.top_logprobs or 0)
        tools = None
        if self.parses_tool_calls:  # rendered into the prompt by the model's chat template
            tools = [t.model_dump(exclude_none=True) for t in self.tools]
        return GenerationRequest(sampling, messages=[m.flat() for m in self.messages], stream=bool(self.stream),
                                 tools=tools, guide=self.guide())


def _prompt_form(prompt: Any) -> str | list[str] | list[int] | list[list[int]]:
    """One of OpenAI's four prompt forms (checked here so a bad prompt's error names `prompt`)."""
    def ids(x: Any) -> bool:
        return isinstance(x, list) and bool(x) and all(isinstance(t, int) and not isinstance(t, bool) for t in x)
    if isinstance(prompt, str) or ids(prompt):
        return prompt
    if isinstance(prompt, list) and prompt and (all(isinstance(x, str) for x in prompt) or all(map(ids, prompt))):
        return prompt
    raise ValueError("prompt must be a string, a list of strings, a non-empty list of token ids, "
                     "or a list of non-empty token-id lists")


Prompt = Annotated[Any, BeforeValidator(_prompt_form)]


class CompletionRequest(_SamplingRequest):
    model: str
    prompt: Prompt
    best_of: int | None = None  # accepted only where it changes nothing (best_of <= n)
    echo: bool | None = False
    frequency_penalty: Penalty | None = 0.0
    logit_bias: dict[str, float] | None = None
    logprobs: int | None = Field(default=None, ge=0, le=5)
    max_tokens: int | None = Field(default=None, ge=1)  # OpenAI's default is 16; ours is the rest of the context
    n: int | None = Field(default=1, ge=1, le=MAX_N)
    presence_penalty: Penalty | None = 0.0
    response_format: ResponseFormat | None = None  # extension (as on chat): JSON output enforced by a grammar
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    suffix: str | None = None
    temperature: float | None = Field(default=1.0, ge=0.0, le=MAX_TEMPERATURE)
    top_p: float | None = Field(default=1.0, gt=0.0, le=1.0)
    user: str | None = None
    ignore_eos: bool | None = False  # extension (vLLM; sent by guidellm)
    min_tokens: int | None = Field(default=0, ge=0)  # extension: no EOS or stop string before this many tokens
    top_k: int | None = Field(default=None, ge=-1)  # extension (vLLM)

    @field_validator("best_of")
    @classmethod
    def _best_of_is_n(cls, best_of: int | None, info: ValidationInfo) -> int | None:
        if best_of is not None and best_of > (info.data.get("n") or 1):
            raise ValueError("best_of > n is not supported")
        return best_of

    @field_validator("suffix")
    @classmethod
    def _no_suffix(cls, suffix: str | None) -> str | None:
        if suffix:
            raise ValueError("suffix (insertion) is not supported by this model")
        return suffix

    def prompts(self) -> list[str | list[int]]:
        """One generator prompt per entry: a text or a list of token ids."""
        p = self.prompt
        if isinstance(p, str) or all(isinstance(x, int) for x in p):
            return [p]
        return list(p)

    def _param_names(self) -> dict[str | None, str]:
        return {"top_logprobs": "logprobs"}

    def to_generation_requests(self) -> list[GenerationRequest]:
        """One generator request per prompt, all with the same sampling (raises ClientError: see client_error)."""
        sampling = self._sampling(self.max_tokens, self.logprobs is not None, self.logprobs or 0)
        guide = self.response_format.guide() if self.response_format else None
        return [GenerationRequest(sampling, prompt=p if isinstance(p, str) else None,
                                  prompt_token_ids=None if isinstance(p, str) else list(p), echo=bool(self.echo),
                                  stream=bool(self.stream), guide=guide) for p in self.prompts()]


# ---- responses -------------------------------------------------------------------------------------------

# The spec types system_fingerprint as a plain string; we have none to offer, so the key is left out.
Fingerprint = Field(default=None, exclude_if=lambda v: v is None)


class PromptTokensDetails(BaseModel):
    cached_tokens: int = 0  # served from the prefix cache (the engine prefilled only the rest)


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails = PromptTokensDetails()


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob] = []


class ChatLogprobs(BaseModel):
    content: list[TokenLogprob] | None = None
    refusal: list[TokenLogprob] | None = None


class ChatResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = Field(default=None, exclude_if=lambda v: not v)


class ChatChoice(BaseModel):
    finish_reason: FinishReason
    index: int
    message: ChatResponseMessage
    logprobs: ChatLogprobs | None = None


class ChatCompletionResponse(BaseModel):
    id: str
    choices: list[ChatChoice]
    created: int
    model: str
    system_fingerprint: str | None = Fingerprint
    object: Literal["chat.completion"] = "chat.completion"
    usage: Usage


class ToolCallDelta(BaseModel):
    """A streamed piece of a tool call: index, id, type and function.name first, then argument fragments."""
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""

    @model_serializer
    def _openai_shape(self) -> dict[str, Any]:
        function = {"name": self.name, "arguments": self.arguments} if self.id else {"arguments": self.arguments}
        head = {"id": self.id, "type": "function"} if self.id else {}
        return {"index": self.index, **head, "function": function}


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None

    @model_serializer
    def _only_set(self) -> dict[str, Any]:  # deltas carry only what changed: {"content": "x"}, {}
        return {k: v for k, v in (("role", self.role), ("content", self.content), ("tool_calls", self.tool_calls))
                if v is not None}


class CompletionLogprobs(BaseModel):
    """The legacy completions shape: parallel lists per generated token."""
    text_offset: list[int] = []
    token_logprobs: list[float | None] = []
    tokens: list[str] = []
    top_logprobs: list[dict[str, float] | None] = []


class CompletionChoice(BaseModel):
    finish_reason: FinishReason | None = None  # null only on streamed chunks before the end
    index: int
    logprobs: CompletionLogprobs | None = None
    text: str


class CompletionResponse(BaseModel):
    """Both the response and each streamed chunk (OpenAI uses one shape for both)."""
    id: str
    choices: list[CompletionChoice]
    created: int
    model: str
    system_fingerprint: str | None = Fingerprint
    object: Literal["text_completion"] = "text_completion"
    usage: Usage | None = None
