"""The generator's Triton interface (docs/llm_model_interface.md, summarized here) and its typed request form.

Model config parameters of the client-facing generator (all strings in config.pbtxt):
  openai_task     "text-generation"
  max_model_len   context window in tokens (prompt + completion)
  vocab_size      number of token ids (logit_bias keys must be below it)
  max_batch_size  most sequences decoded together (continuous batching; n > 1 choices count each)
  engine          engine file (or folder) inside the version folder (default "model.onnx")
  intra_op_threads ONNX Runtime threads (0 = ORT default)
  device, engine_kind, precision: where and on what the jobs run (runtime/target.py; runtime/llm/engines.py picks
                  our scheduler for the onnxruntime kinds, TensorRT-LLM's batcher for "tensorrt-llm")
  tensor_parallel_size, pipeline_parallel_size, quantization: tensorrt-llm entries, for people and tools
                  (the engine itself loads by its trtllm_manifest.json)
  stream_interval_ms  coalescing window of a stream's responses (runtime/llm/coalesce.py; 0 = every step)
  stream_max_held_tokens  a stream's response goes out once it holds this many tokens (0 = no limit)
  prefix_caching  "true" (default): a prompt reuses the cached KV of a block-aligned prefix (runtime/llm/slot_table.py)

Input `request` (TYPE_STRING [1], JSON): {"messages": [...]} | {"prompt": str} | {"prompt_token_ids": [int]},
  "sampling": {...SamplingParams fields...}, "echo": bool, "stream": bool (default true; false: one response),
  "tools": [OpenAI function definitions] (rendered by the chat template),
  "guide": the grammar the output must follow (runtime.llm.grammar.Guide; absent = free text).
  (The vLLM backend's tensors: runtime/llm/vllm_interface.py.)
Output `response` (TYPE_STRING [1], JSON) per streamed response:
  {"choices": [{"index", "text", "finish_reason", "logprobs"}], "usage": {"prompt_tokens", "completion_tokens"},
   "prompt_text": str (only when echo)}
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from runtime.errors import ClientError
from runtime.llm.coalesce import StreamInterval

MAX_STOP_STRINGS = 4
MAX_TOP_LOGPROBS = 20
DEFAULT_STREAM_INTERVAL_MS = 50.0


@dataclass(frozen=True)
class GeneratorConfig:
    max_model_len: int
    vocab_size: int
    max_batch_size: int = 32
    engine: str = "model.onnx"
    intra_op_threads: int = 0
    stream_interval: StreamInterval = StreamInterval(DEFAULT_STREAM_INTERVAL_MS / 1e3)
    prefix_caching: bool = True

    @classmethod
    def from_parameters(cls, params: dict[str, str]) -> "GeneratorConfig":
        return cls(max_model_len=int(params["max_model_len"]), vocab_size=int(params["vocab_size"]),
                   max_batch_size=int(params.get("max_batch_size", 32)), engine=params.get("engine", "model.onnx"),
                   intra_op_threads=int(params.get("intra_op_threads", 0)),
                   stream_interval=StreamInterval.from_parameters(params, DEFAULT_STREAM_INTERVAL_MS),
                   prefix_caching=params.get("prefix_caching", "true").lower() != "false")


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # vLLM extension: 0 = the whole vocabulary
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)
    seed: int | None = None
    n: int = 1
    max_tokens: int | None = None  # None: the rest of the context window
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False
    min_tokens: int = 0  # vLLM / TensorRT-LLM extension: no EOS and no stop string before this many tokens
    logprobs: bool = False
    top_logprobs: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @classmethod
    def from_json(cls, obj: dict[str, Any] | None, vocab_size: int) -> "SamplingParams":
        obj = {k: v for k, v in (obj or {}).items() if v is not None}
        try:
            bias = {int(k): float(v) for k, v in (obj.get("logit_bias") or {}).items()}
        except (TypeError, ValueError) as exc:
            raise ClientError(f"logit_bias keys must be token ids: {exc}", "logit_bias") from exc
        bad = [k for k in bias if not 0 <= k < vocab_size]
        if bad:
            raise ClientError(f"logit_bias token id {bad[0]} is outside the vocabulary (0..{vocab_size - 1})",
                              "logit_bias", "invalid_logit_bias")
        stop = obj.get("stop") or ()
        stop = (stop,) if isinstance(stop, str) else tuple(s for s in stop if s)
        if len(stop) > MAX_STOP_STRINGS:
            raise ClientError(f"at most {MAX_STOP_STRINGS} stop strings are allowed, got {len(stop)}", "stop")
        params = cls(
            temperature=float(obj.get("temperature", 1.0)), top_p=float(obj.get("top_p", 1.0)),
            top_k=int(obj.get("top_k", 0)),
            presence_penalty=float(obj.get("presence_penalty", 0.0)),
            frequency_penalty=float(obj.get("frequency_penalty", 0.0)), logit_bias=bias,
            seed=None if obj.get("seed") is None else int(obj["seed"]), n=int(obj.get("n", 1)),
            max_tokens=None if obj.get("max_tokens") is None else int(obj["max_tokens"]), stop=stop,
            ignore_eos=bool(obj.get("ignore_eos", False)), min_tokens=int(obj.get("min_tokens", 0)),
            logprobs=bool(obj.get("logprobs", False)),
            top_logprobs=int(obj.get("top_logprobs", 0)))
        params.validate()
        return params

    def validate(self) -> None:
        checks = [
            (0.0 <= self.temperature <= 2.0, "temperature must be in [0, 2]", "temperature"),
            (0.0 < self.top_p <= 1.0, "top_p must be in (0, 1]", "top_p"),
            (self.top_k >= 0, "top_k must be at least 0 (0: no limit)", "top_k"),
            (1 <= self.n <= 128, "n must be in [1, 128]", "n"),
            (-2.0 <= self.presence_penalty <= 2.0, "presence_penalty must be in [-2, 2]", "presence_penalty"),
            (-2.0 <= self.frequency_penalty <= 2.0, "frequency_penalty must be in [-2, 2]", "frequency_penalty"),
            (all(-100.0 <= v <= 100.0 for v in self.logit_bias.values()),
             "logit_bias values must be in [-100, 100]", "logit_bias"),
            (self.max_tokens is None or self.max_tokens >= 1, "max_tokens must be at least 1", "max_tokens"),
            (self.min_tokens >= 0, "min_tokens must be at least 0", "min_tokens"),
            (self.max_tokens is None or self.min_tokens <= self.max_tokens,
             f"min_tokens ({self.min_tokens}) must be at most max_tokens ({self.max_tokens})", "min_tokens"),
            (0 <= self.top_logprobs <= MAX_TOP_LOGPROBS, f"top_logprobs must be in [0, {MAX_TOP_LOGPROBS}]",
             "top_logprobs"),
        ]
        for ok, message, param in checks:
            if not ok:
                raise ClientError(message, param)


@dataclass(frozen=True)
class GenerationRequest:
    """What the client asked for, before tokenization."""
    sampling: SamplingParams
    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    prompt_token_ids: list[int] | None = None
    echo: bool = False
    stream: bool = True
    tools: list[dict[str, Any]] | None = None
    guide: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, text: str, vocab_size: int) -> "GenerationRequest":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ClientError(f"request is not valid JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise ClientError("request must be a JSON object")
        sources = [k for k in ("messages", "prompt", "prompt_token_ids") if obj.get(k) is not None]
        if len(sources) != 1:
            raise ClientError("give exactly one of messages, prompt, prompt_token_ids", "messages")
        ids = obj.get("prompt_token_ids")
        if ids is not None:
            if not ids or not all(isinstance(t, int) and 0 <= t < vocab_size for t in ids):
                raise ClientError(f"prompt token ids must be a non-empty list of ids in 0..{vocab_size - 1}",
                                  "prompt")
        if obj.get("messages") is not None and not obj["messages"]:
            raise ClientError("messages must not be empty", "messages")
        return cls(sampling=SamplingParams.from_json(obj.get("sampling"), vocab_size), messages=obj.get("messages"),
                   prompt=obj.get("prompt"), prompt_token_ids=ids, echo=bool(obj.get("echo", False)),
                   stream=bool(obj.get("stream", True)), tools=obj.get("tools") or None,
                   guide=obj.get("guide") or None)


def response_json(choices: list[dict], prompt_tokens: int, completion_tokens: int,
                  prompt_text: str | None = None) -> str:
    body: dict[str, Any] = {"choices": choices,
                            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}}
    if prompt_text is not None:
        body["prompt_text"] = prompt_text
    return json.dumps(body, ensure_ascii=False)
