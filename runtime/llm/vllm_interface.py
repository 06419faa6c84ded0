"""The vLLM backend's tensor interface on our generator (pure mapping; the Triton glue is in llm_generator's model.py).

With it Triton's `POST /v2/models/<id>/generate[_stream]`, perf_analyzer, genai-perf in Triton mode and Triton's
OpenAI frontend drive the generator directly. Field by field in docs/llm_model_interface.md; in short:

inputs   text_input [1] STRING (the prompt, used as is: no chat template), stream [1] BOOL (default false),
         sampling_parameters [1] STRING (JSON of vLLM SamplingParams fields; the request's parameters when absent),
         exclude_input_in_output [1] BOOL (default: prepend the prompt unless streaming),
         return_finish_reason / return_num_input_tokens / return_num_output_tokens [1] BOOL
outputs  text_output [n] (per choice: the whole text, or the new text of each streamed response),
         finish_reason [n], num_input_tokens [1], num_output_tokens [n]
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from runtime.errors import ClientError
from runtime.llm.protocol import GenerationRequest, SamplingParams

INPUTS = ("text_input", "stream", "exclude_input_in_output", "sampling_parameters", "return_finish_reason",
          "return_num_input_tokens", "return_num_output_tokens")
DEFAULT_MAX_TOKENS = 16  # vLLM's SamplingParams default (our own contract's default is the rest of the context)


def _number(kind: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda v: None if v is None else kind(v)  # perf_analyzer's JSON may carry numbers as strings


def _flag(value: Any) -> bool:
    return value.strip().lower() in ("1", "true", "yes") if isinstance(value, str) else bool(value)


# vLLM SamplingParams field -> (our sampling field, converter)
_MAPPED: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "n": ("n", _number(int)), "temperature": ("temperature", _number(float)), "top_p": ("top_p", _number(float)),
    "presence_penalty": ("presence_penalty", _number(float)),
    "frequency_penalty": ("frequency_penalty", _number(float)), "seed": ("seed", _number(int)),
    "max_tokens": ("max_tokens", _number(int)), "min_tokens": ("min_tokens", _number(int)),
    "ignore_eos": ("ignore_eos", _flag), "stop": ("stop", lambda v: [v] if isinstance(v, str) else list(v or [])),
    "logit_bias": ("logit_bias", lambda v: dict(v or {})),
}
# vLLM fields accepted only at the value that changes nothing here (anything else is a 400 naming the field)
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "best_of": (None, 1), "top_k": (None, -1, 0), "min_p": (None, 0, 0.0), "repetition_penalty": (None, 1, 1.0),
    "skip_special_tokens": (None, True), "spaces_between_special_tokens": (None, True, False),
    "include_stop_str_in_output": (None, False), "stop_token_ids": (None, []), "logprobs": (None,),
    "prompt_logprobs": (None,), "detokenize": (None, True),
}
# Keys that arrive among the request's parameters without being sampling fields (the generate endpoint's
# examples put stream there; Triton adds its own)
_NOT_SAMPLING = {"stream", "exclude_input_in_output", "priority", "timeout", "sequence_id", "sequence_start",
                 "sequence_end", "binary_data_output"}


def sampling_from_vllm(params: dict[str, Any]) -> dict[str, Any]:
    """vLLM SamplingParams fields -> our `sampling` object (runtime.llm.protocol.SamplingParams.from_json)."""
    sampling: dict[str, Any] = {"max_tokens": DEFAULT_MAX_TOKENS}
    for key, value in params.items():
        if key in _MAPPED:
            name, convert = _MAPPED[key]
            try:
                sampling[name] = convert(value)
            except (TypeError, ValueError) as exc:
                raise ClientError(f"sampling_parameters.{key}: {exc}", key) from exc
        elif key in _NEUTRAL:
            if value not in _NEUTRAL[key]:
                raise ClientError(f"sampling_parameters.{key}={value!r} is not supported by this model "
                                  f"(accepted: {[v for v in _NEUTRAL[key] if v is not None] or 'null'})", key)
        elif key not in _NOT_SAMPLING:
            raise ClientError(f"unknown sampling parameter {key!r}", key)
    return sampling


def _parameters(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ClientError(f"sampling_parameters is not valid JSON: {exc}", "sampling_parameters") from exc
    if not isinstance(obj, dict):
        raise ClientError("sampling_parameters must be a JSON object", "sampling_parameters")
    return obj


@dataclass(frozen=True)
class VllmRequest:
    prompt: str
    stream: bool
    prepend_prompt: bool  # vLLM: exclude_input_in_output=false puts the prompt before the first text
    sampling: SamplingParams
    outputs: frozenset[str]  # the additional outputs asked for (finish_reason, num_input_tokens, ...)

    @classmethod
    def from_inputs(cls, inputs: dict[str, Any], request_parameters: str | None = None) -> "VllmRequest":
        """inputs: the INPUTS' scalar values (None when absent); request_parameters: the request's JSON parameters,
        read when sampling_parameters is absent (the generate endpoint's "parameters" object)."""
        params = _parameters(inputs.get("sampling_parameters") or request_parameters)
        prompt = inputs.get("text_input")
        if not isinstance(prompt, str) or not prompt:
            raise ClientError("text_input must be a non-empty string", "text_input")
        stream = _flag(_first(inputs.get("stream"), params.get("stream"), False))
        exclude = _first(inputs.get("exclude_input_in_output"), params.get("exclude_input_in_output"))
        if exclude is not None and not _flag(exclude) and stream:
            raise ClientError("When streaming, `exclude_input_in_output` = False is not allowed.",
                              "exclude_input_in_output")
        prepend = not stream if exclude is None else not _flag(exclude)
        outputs = frozenset(name[len("return_"):] for name in INPUTS
                            if name.startswith("return_") and _flag(inputs.get(name) or False))
        sampling = SamplingParams.from_json(sampling_from_vllm(params))
        if "num_output_tokens" in outputs and sampling.n > 1:
            raise ClientError("return_num_output_tokens is supported with n = 1 only", "return_num_output_tokens")
        return cls(prompt, stream, prepend, sampling, outputs)

    @property
    def request_json(self) -> str:
        """Our own contract's request (the `request` input)."""
        return GenerationRequest(self.sampling, prompt=self.prompt).to_json()

    @property
    def n(self) -> int:
        return self.sampling.n


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


class VllmResponses:
    """Our generator's response payloads -> the vLLM backend's output tensors, one response at a time.

    Streaming: one response per payload with each choice's new text. Not streaming: nothing until the final
    payload, then one response with each choice's whole text (Triton's /generate takes exactly one)."""

    def __init__(self, request: VllmRequest):
        self.request = request
        self.texts = [""] * request.n
        self.finish: list[str | None] = [None] * request.n
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self._reported_tokens = 0
        self._prompt_pending = request.prepend_prompt

    def tensors(self, payload: str, final: bool) -> dict[str, np.ndarray] | None:
        self._absorb(json.loads(payload))
        if not self.request.stream and not final:
            return None
        texts, self.texts = self.texts, [""] * self.request.n
        if self._prompt_pending:
            texts, self._prompt_pending = [self.request.prompt + t for t in texts], False
        out = {"text_output": np.array([t.encode("utf-8") for t in texts], dtype=np.object_)}
        if "finish_reason" in self.request.outputs:
            out["finish_reason"] = np.array([str(f).encode() for f in self.finish], dtype=np.object_)
        if "num_input_tokens" in self.request.outputs:
            out["num_input_tokens"] = np.array([self.prompt_tokens], dtype=np.uint32)
        if "num_output_tokens" in self.request.outputs:
            out["num_output_tokens"] = np.array([self.completion_tokens - self._reported_tokens], dtype=np.uint32)
            self._reported_tokens = self.completion_tokens
        return out

    def _absorb(self, body: dict[str, Any]) -> None:
        for choice in body.get("choices", []):
            self.texts[choice["index"]] += choice.get("text") or ""
            if choice.get("finish_reason"):
                self.finish[choice["index"]] = choice["finish_reason"]
        usage = body.get("usage") or {}
        self.prompt_tokens = usage.get("prompt_tokens", self.prompt_tokens)
        self.completion_tokens = usage.get("completion_tokens", self.completion_tokens)
