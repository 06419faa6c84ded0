"""A fake of the TensorRT-LLM 1.0.0 LLM API surface our engine uses, written here from the library's documented
signatures (tensorrt_llm/sampling_params.py, llmapi/llm.py, executor/result.py at 1.0):

- SamplingParams: a kw-only dataclass; unknown keywords raise TypeError, best_of defaults to n and may not be
  below it, n > 1 under greedy decoding (top_k None/1 and top_p None/0) is refused unless
  TLLM_ALLOW_N_GREEDY_DECODING is set.
- LLM.generate_async(inputs, sampling_params=None, lora_request=None, prompt_adapter_request=None,
  streaming=False, kv_cache_retention_config=None, disaggregated_params=None, _postproc_params=None,
  scheduling_params=None, cache_salt=None) -> RequestOutput; raises ValueError when prompt + max_tokens exceeds
  max_seq_len (its argument check on the TensorRT flow).
- RequestOutput: async iterator yielding itself per step; .outputs (CompletionOutput per choice), .finished,
  .abort() (the next response ends every choice with 'cancelled').
- CompletionOutput: index, token_ids (cumulative), logprobs (list of {token id: Logprob(logprob, rank)}),
  finish_reason in 'stop' | 'length' | 'timeout' | 'cancelled', stop_reason (the stop token id for stop words).
  Like the library, a stop-word token is trimmed from token_ids; the end_id token is dropped too.

The "model": choice i continues the prompt's last token t with t+1+i, t+2+i, ... (mod vocab).
"""
from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any, Optional

from runtime.llm.sequence import Vocab

# The tests' vocabulary: letters, then Llama-3's two stop tokens (<|eot_id|> is the EOS / end_id).
V = 20
EOT, END_OF_TEXT = 19, 18
VOCAB = Vocab([bytes([ord("a") + i]) for i in range(V - 2)] + [b"<|end_of_text|>", b"<|eot_id|>"],
              frozenset({EOT, END_OF_TEXT}), frozenset({EOT, END_OF_TEXT}))


@dataclass(kw_only=True)
class SamplingParams:
    end_id: Optional[int] = None
    pad_id: Optional[int] = None
    max_tokens: int = 32
    stop: Any = None
    stop_token_ids: Optional[list[int]] = None
    embedding_bias: Any = None
    logits_processor: Any = None
    n: int = 1
    best_of: Optional[int] = None
    top_k: Optional[int] = None
    top_p: Optional[float] = None
    seed: Optional[int] = None
    temperature: Optional[float] = None
    min_tokens: Optional[int] = None
    presence_penalty: Optional[float] = None
    frequency_penalty: Optional[float] = None
    logprobs: Optional[int] = None
    return_generation_logits: bool = False
    guided_decoding: Any = None
    ignore_eos: bool = False
    detokenize: bool = True
    add_special_tokens: bool = True
    skip_special_tokens: bool = True

    def __post_init__(self):
        self.best_of = self.best_of or self.n
        if self.best_of < self.n:
            raise ValueError("best_of cannot be less than n")
        greedy = self.top_k in (None, 1) and self.top_p in (None, 0.0)
        if self.best_of > 1 and greedy and not os.environ.get("TLLM_ALLOW_N_GREEDY_DECODING"):
            raise ValueError("Greedy decoding in the LLM API does not allow multiple returns")


@dataclass
class KvCacheConfig:
    free_gpu_memory_fraction: Optional[float] = None
    enable_block_reuse: bool = True


@dataclass
class Logprob:
    logprob: float
    rank: Optional[int] = None


@dataclass
class CompletionOutput:
    index: int
    text: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprobs: list = field(default_factory=list)
    finish_reason: Optional[str] = None
    stop_reason: Any = None


class RequestOutput:
    def __init__(self, llm: "FakeLLM", prompt: list[int], params: SamplingParams):
        self.llm, self.prompt_token_ids, self.params = llm, prompt, params
        self.outputs = [CompletionOutput(i) for i in range(params.n)]
        self.finished = False
        self.aborted_by_client = False
        self._step = 0

    def abort(self) -> None:
        self.aborted_by_client = True
        self.llm.aborts += 1

    def __aiter__(self):
        return self

    async def __anext__(self):
        if self.finished:
            raise StopAsyncIteration
        await asyncio.sleep(self.llm.step_delay)
        while self.llm.stalled:
            await asyncio.sleep(0.01)
        self._step += 1
        if self.llm.fail_at_step == self._step:
            raise RuntimeError("Encountered an error in forwardAsync function: out of KV cache blocks")
        for out in self.outputs:
            if out.finish_reason is None:
                self._advance(out)
        self.finished = all(o.finish_reason is not None for o in self.outputs)
        return self

    def _advance(self, out: CompletionOutput) -> None:
        if self.aborted_by_client:
            out.finish_reason = "cancelled"
            return
        p = self.params
        token = (self.prompt_token_ids[-1] + self._step + out.index) % self.llm.vocab_size
        out.token_ids.append(token)
        if p.logprobs:
            out.logprobs.append({token: Logprob(-0.25, 1), (token + 1) % self.llm.vocab_size: Logprob(-1.5, 2)})
        if token == p.end_id and not p.ignore_eos:
            out.token_ids.pop()  # the end token is not part of the output
            out.finish_reason = "stop"
        elif token in (p.stop_token_ids or []):
            out.token_ids.pop()
            out.finish_reason, out.stop_reason = "stop", token
        elif len(out.token_ids) >= p.max_tokens:
            out.finish_reason = "length"


class FakeLLM:
    def __init__(self, vocab_size: int, max_seq_len: int = 64, step_delay: float = 0.0):
        self.vocab_size, self.max_seq_len, self.step_delay = vocab_size, max_seq_len, step_delay
        self.requests: list[tuple[list[int], SamplingParams, bool]] = []
        self.results: list[RequestOutput] = []
        self.aborts = 0
        self.fail_at_step: int | None = None
        self.stalled = False
        self.shut_down = False

    def generate_async(self, inputs, sampling_params=None, lora_request=None, prompt_adapter_request=None,
                       streaming=False, kv_cache_retention_config=None, disaggregated_params=None,
                       _postproc_params=None, scheduling_params=None, cache_salt=None):
        asyncio.get_running_loop()  # the library's async results need the caller's event loop
        if len(inputs) + sampling_params.max_tokens > self.max_seq_len:
            raise ValueError(f"The sum of prompt length ({len(inputs)}) and max_tokens "
                             f"({sampling_params.max_tokens}) should not exceed max_seq_len ({self.max_seq_len})")
        self.requests.append((list(inputs), sampling_params, streaming))
        result = RequestOutput(self, list(inputs), sampling_params)
        self.results.append(result)
        return result

    def shutdown(self) -> None:
        self.shut_down = True
