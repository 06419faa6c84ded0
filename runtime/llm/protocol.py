"""The generator's Triton interface (docs/llm_model_interface.md, summarized here) and its typed request form.

Model config parameters of the client-facing generator (all strings in config.pbtxt):
  openai_task     "text-generation"
  max_model_len   context window in tokens (prompt + completion)
  vocab_size      number of token ids (logit_bias keys must be below it)
  max_batch_size  most sequences decoded together (continuous batching; n > 1 choices count each)
  engine          engine file (or folder) inside the version folder (default "model.onnx")
  intra_op_threads ONNX Runtime threads (0 = ORT default)
  intra_op_spinning "true": those threads spin between operators (faster steps, the cores stay busy while idle
                  between steps); "false" (default) leaves the cores to Triton and the adapter between steps
  device, engine_kind, precision: where and on what the jobs run (runtime/target.py; runtime/llm/engines.py picks
                  our scheduler for the onnxruntime kinds, TensorRT-LLM's batcher for "tensorrt-llm")
  tensor_parallel_size, pipeline_parallel_size, quantization: tensorrt-llm entries, for people and tools
                  (the engine itself loads by its trtllm_manifest.json)
  stream_interval_ms  coalescing window of a stream's responses (runtime/llm/coalesce.py; 0 = every step)
  stream_max_held_tokens  a stream's response goes out once it holds this many tokens (0 = no limit)
  prefix_caching  "true" (default): a prompt reuses the cached KV of a block-aligned prefix (runtime/llm/slot_table.py)
  kv_cache_dtype  "auto" | "int8": what the build stored the KV cache as (builders/llm/kv_cache.py); a record, the
                  graph's cache inputs carry it

Input `request` (TYPE_STRING [1], JSON): {"messages": [...]} | {"prompt": str} | {"prompt_token_ids": [int]},
  "sampling": {...SamplingParams fields...}, "echo": bool, "stream": bool (default true; false: one response),
  "tools": [OpenAI function definitions] (rendered by the chat template),
  "guide": the grammar the output must follow (runtime.llm.grammar.Guide; absent = free text).
  (The vLLM backend's tensors: runtime/llm/vllm_interface.py.)
Output `response` (TYPE_STRING [1], JSON) per streamed response:
  {"choices": [{"index", "text", "finish_reason", "logprobs"}], "usage": {"prompt_tokens", "completion_tokens",
   "cached_tokens" (leading prompt tokens whose KV came from the prefix cache)}, "prompt_text": str (only when echo)}
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from runtime.errors import ClientError
from runtime.llm.coalesce import StreamInterval

# The request's bounds: the runtime checks them (GenerationRequest.validate) and the adapter's pydantic fields
# import them, so an OpenAI client and a direct Triton caller meet the same limits.
MAX_N = 128
MAX_STOP_STRINGS = 4
MAX_TOP_LOGPROBS = 20
MAX_TEMPERATURE = 2.0
MAX_PENALTY = 2.0  # presence and frequency penalties lie in [-MAX_PENALTY, MAX_PENALTY]
MAX_LOGIT_BIAS = 100.0  # logit_bias values lie in [-MAX_LOGIT_BIAS, MAX_LOGIT_BIAS]
DEFAULT_STREAM_INTERVAL_MS = 50.0

# config.pbtxt parameter keys read outside the runtime (the adapter, tests, benches)
MAX_MODEL_LEN = "max_model_len"
VOCAB_SIZE = "vocab_size"
MAX_BATCH_SIZE = "max_batch_size"


@dataclass(frozen=True)
class GeneratorConfig:
    max_model_len: int
    vocab_size: int
    max_batch_size: int = 32
    engine: str = "model.onnx"
    intra_op_threads: int = 0
    stream_interval: StreamInterval = StreamInterval(DEFAULT_STREAM_INTERVAL_MS / 1e3)
    prefix_caching: bool = True
    kv_cache_dtype: str = "auto"  # a record of the build's choice: the graph's cache inputs carry the dtype
    intra_op_spinning: bool = False

    @classmethod
    def from_parameters(cls, params: dict[str, str]) -> "GeneratorConfig":
        return cls(max_model_len=int(params[MAX_MODEL_LEN]), vocab_size=int(params[VOCAB_SIZE]),
                   max_batch_size=int(params.get(MAX_BATCH_SIZE, 32)), engine=params.get("engine", "model.onnx"),
                   intra_op_threads=int(params.get("intra_op_threads", 0)),
                   stream_interval=StreamInterval.from_parameters(params, DEFAULT_STREAM_INTERVAL_MS),
                   prefix_caching=params.get("prefix_caching", "true").lower() != "false",
                   kv_cache_dtype=params.get("kv_cache_dtype", "auto"),
                   intra_op_spinning=params.get("intra_op_spinning", "false").lower() == "true")

    def to_parameters(self) -> dict[str, str]:
        return {MAX_MODEL_LEN: str(self.max_model_len), VOCAB_SIZE: str(self.vocab_size),
                MAX_BATCH_SIZE: str(self.max_batch_size), "engine": self.engine,
                "intra_op_threads": str(self.intra_op_threads), **self.stream_interval.to_parameters(),
                "prefix_caching": str(self.prefix_caching).lower(), "kv_cache_dtype": self.kv_cache_dtype,
                "intra_op_spinning": str(self.intra_op_spinning).lower()}


def parse_logit_bias(raw: dict[Any, Any] | None) -> dict[int, float]:
    """{"token id": bias} (JSON keys are strings) -> {token id: bias}."""
    try:
        return {_token_id(k): float(v) for k, v in (raw or {}).items()}
    except (TypeError, ValueError) as exc:
        raise ClientError(f"logit_bias keys must be token ids (integers as strings): {exc}", "logit_bias") from exc


def _token_id(key: Any) -> int:
    if isinstance(key, bool) or not str(key).strip().lstrip("-").isdigit():
        raise ValueError(f"got {key!r}")
    return int(key)


def parse_stop(raw: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """A string or a list of strings -> the non-empty stop strings."""
    if raw is None:
        return ()
    return (raw,) if isinstance(raw, str) else tuple(s for s in raw if s)


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
    def from_json(cls, obj: dict[str, Any] | None, vocab_size: int | None = None) -> "SamplingParams":
        """Parse and check the model-free rules; with `vocab_size` (tests, benches), the vocabulary's too."""
        obj = {k: v for k, v in (obj or {}).items() if v is not None}
        try:
            params = cls(
                temperature=float(obj.get("temperature", 1.0)), top_p=float(obj.get("top_p", 1.0)),
                top_k=int(obj.get("top_k", 0)),
                presence_penalty=float(obj.get("presence_penalty", 0.0)),
                frequency_penalty=float(obj.get("frequency_penalty", 0.0)),
                logit_bias=parse_logit_bias(obj.get("logit_bias")),
                seed=None if obj.get("seed") is None else int(obj["seed"]), n=int(obj.get("n", 1)),
                max_tokens=None if obj.get("max_tokens") is None else int(obj["max_tokens"]),
                stop=parse_stop(obj.get("stop")), ignore_eos=bool(obj.get("ignore_eos", False)),
                min_tokens=int(obj.get("min_tokens", 0)), logprobs=bool(obj.get("logprobs", False)),
                top_logprobs=int(obj.get("top_logprobs", 0)))
        except (TypeError, ValueError) as exc:
            raise ClientError(f"sampling: {exc}") from exc
        params.validate()
        if vocab_size is not None:
            params.check_vocabulary(vocab_size)
        return params

    def to_json(self) -> dict[str, Any]:
        """The `sampling` object of the request JSON (what from_json reads)."""
        return {"temperature": self.temperature, "top_p": self.top_p, "top_k": self.top_k,
                "presence_penalty": self.presence_penalty, "frequency_penalty": self.frequency_penalty,
                "logit_bias": {str(k): v for k, v in self.logit_bias.items()}, "seed": self.seed, "n": self.n,
                "max_tokens": self.max_tokens, "stop": list(self.stop), "ignore_eos": self.ignore_eos,
                "min_tokens": self.min_tokens, "logprobs": self.logprobs, "top_logprobs": self.top_logprobs}

    def validate(self) -> None:
        """The rules that need no model."""
        checks = [
            (0.0 <= self.temperature <= MAX_TEMPERATURE, f"temperature must be in [0, {MAX_TEMPERATURE:g}]",
             "temperature"),
            (0.0 < self.top_p <= 1.0, "top_p must be in (0, 1]", "top_p"),
            (self.top_k >= 0, "top_k must be at least 0 (0: no limit)", "top_k"),
            (1 <= self.n <= MAX_N, f"n must be in [1, {MAX_N}]", "n"),
            (-MAX_PENALTY <= self.presence_penalty <= MAX_PENALTY,
             f"presence_penalty must be in [-{MAX_PENALTY:g}, {MAX_PENALTY:g}]", "presence_penalty"),
            (-MAX_PENALTY <= self.frequency_penalty <= MAX_PENALTY,
             f"frequency_penalty must be in [-{MAX_PENALTY:g}, {MAX_PENALTY:g}]", "frequency_penalty"),
            (all(-MAX_LOGIT_BIAS <= v <= MAX_LOGIT_BIAS for v in self.logit_bias.values()),
             f"logit_bias values must be in [-{MAX_LOGIT_BIAS:g}, {MAX_LOGIT_BIAS:g}]", "logit_bias"),
            (len(self.stop) <= MAX_STOP_STRINGS,
             f"at most {MAX_STOP_STRINGS} stop strings are allowed, got {len(self.stop)}", "stop"),
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

    def check_vocabulary(self, vocab_size: int) -> None:
        bad = next((k for k in self.logit_bias if not 0 <= k < vocab_size), None)
        if bad is not None:
            raise ClientError(f"logit_bias token id {bad} is outside this model's vocabulary (0..{vocab_size - 1})",
                              "logit_bias", "invalid_logit_bias")

    def check_capacity(self, config: GeneratorConfig) -> None:
        """The served model's batch and context window."""
        if self.n > config.max_batch_size:
            raise ClientError(f"n={self.n} is more than this model decodes at once ({config.max_batch_size})", "n")
        if self.max_tokens is not None and self.max_tokens > config.max_model_len:
            raise ClientError(f"max_tokens is {self.max_tokens}, more than this model's context window of "
                              f"{config.max_model_len} tokens.", "max_tokens", "context_length_exceeded")


@dataclass(frozen=True)
class GenerationRequest:
    """What the client asked for, before tokenization: the generator's `request` input, typed. The adapter builds
    it from an OpenAI request and sends to_json(); the generator reads it with from_json(); both call validate()."""
    sampling: SamplingParams
    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    prompt_token_ids: list[int] | None = None
    echo: bool = False
    stream: bool = True
    tools: list[dict[str, Any]] | None = None
    guide: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, text: str, vocab_size: int | None = None) -> "GenerationRequest":
        """Parse the wire form; checks the model-free rules (and, with `vocab_size`, the vocabulary's)."""
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ClientError(f"request is not valid JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise ClientError("request must be a JSON object")
        request = cls(sampling=SamplingParams.from_json(obj.get("sampling")), messages=obj.get("messages"),
                      prompt=obj.get("prompt"), prompt_token_ids=obj.get("prompt_token_ids"),
                      echo=bool(obj.get("echo", False)), stream=bool(obj.get("stream", True)),
                      tools=obj.get("tools") or None, guide=obj.get("guide") or None)
        request.check_source()
        if vocab_size is not None:
            request.check_vocabulary(vocab_size)
        return request

    def to_json(self) -> str:
        body: dict[str, Any] = {}
        if self.messages is not None:
            body["messages"] = self.messages
        if self.prompt is not None:
            body["prompt"] = self.prompt
        if self.prompt_token_ids is not None:
            body["prompt_token_ids"] = self.prompt_token_ids
        body["sampling"] = self.sampling.to_json()
        body["stream"] = self.stream
        if self.echo:
            body["echo"] = True
        if self.tools:
            body["tools"] = self.tools
        if self.guide:
            body["guide"] = self.guide
        return json.dumps(body, ensure_ascii=False)

    def validate(self, config: GeneratorConfig) -> None:
        """Every rule of a request against the served model; raises ClientError (a 400 with its param)."""
        self.check_source()
        self.sampling.validate()
        self.check_vocabulary(config.vocab_size)
        self.sampling.check_capacity(config)

    def check_source(self) -> None:
        sources = [s for s in (self.messages, self.prompt, self.prompt_token_ids) if s is not None]
        if len(sources) != 1:
            raise ClientError("give exactly one of messages, prompt, prompt_token_ids", "messages")
        if self.messages is not None and not self.messages:
            raise ClientError("messages must not be empty", "messages")
        ids = self.prompt_token_ids
        if ids is not None and (not ids or not all(isinstance(t, int) and not isinstance(t, bool) for t in ids)):
            raise ClientError("prompt token ids must be a non-empty list of integers", "prompt")

    def check_vocabulary(self, vocab_size: int) -> None:
        self.sampling.check_vocabulary(vocab_size)
        bad = next((t for t in self.prompt_token_ids or () if not 0 <= t < vocab_size), None)
        if bad is not None:
            raise ClientError(f"Invalid token id {bad} in the prompt: this model's vocabulary has {vocab_size} "
                              f"tokens (0..{vocab_size - 1}).", "prompt")


def response_json(choices: list[dict], prompt_tokens: int, completion_tokens: int,
                  prompt_text: str | None = None, cached_tokens: int = 0) -> str:
    body: dict[str, Any] = {"choices": choices,
                            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                                      "cached_tokens": cached_tokens}}
    if prompt_text is not None:
        body["prompt_text"] = prompt_text
    return json.dumps(body, ensure_ascii=False)
