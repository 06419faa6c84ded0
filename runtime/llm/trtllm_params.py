"""Our typed request <-> TensorRT-LLM's LLM API objects (target: TensorRT-LLM 1.0.0), as pure code.

Requests go in as token ids (our tokenizer and chat template ran already) with `detokenize=False`; results come
back as CompletionOutput token ids and logprobs, which feed the same Choice / Job bookkeeping as our own
scheduler (runtime/llm/sequence.py): incremental detokenization, stop strings across token boundaries,
logprob entries, finish reasons, usage. So the response JSON is the generator contract, whatever the engine.

What the library has we map (temperature, top_p, n, seed, penalties, logprobs, max_tokens, ignore_eos, stop
token ids, logit_bias as its embedding_bias). Stop strings stay ours: the library matches them on token ids of
one tokenization, ours match text across any token boundary, then the engine aborts the request.

Nothing here imports tensorrt_llm: the library's classes are passed in (tests pass fakes that follow the
1.0.0 signatures: SamplingParams fields, LLM(...) arguments, CompletionOutput / Logprob fields).
"""
from __future__ import annotations

import math
import secrets
from typing import Any, Iterable, Sequence

from runtime.errors import ClientError
from runtime.llm.protocol import SamplingParams
from runtime.llm.sampler import BAN, Sampled
from runtime.llm.sequence import Choice, Job, Vocab
from runtime.llm.trtllm_manifest import TrtLlmManifest

# CompletionOutput.finish_reason -> ours. 'cancelled' has no entry: only our abort may cancel a request.
FINISH_REASONS = {"stop": "stop", "length": "length", "timeout": "length"}


def sampling_kwargs(params: SamplingParams, *, max_tokens: int, end_id: int, stop_ids: Iterable[int],
                    vocab_size: int) -> dict[str, Any]:
    """Keyword arguments of tensorrt_llm.SamplingParams for one request (all n choices)."""
    kw: dict[str, Any] = {
        "n": params.n, "best_of": params.n, "max_tokens": max_tokens, "end_id": end_id, "pad_id": end_id,
        "ignore_eos": params.ignore_eos, "detokenize": False, "add_special_tokens": False,
        # No seed means a fresh one (like our sampler); the runtime's default seed 0 would repeat every answer.
        "seed": params.seed if params.seed is not None else secrets.randbits(63),
    }
    others = sorted(set(stop_ids) - {end_id})
    if others and not params.ignore_eos:  # ignore_eos: like our scheduler, no stop token ends the choice
        kw["stop_token_ids"] = others
    if params.greedy:
        kw["top_k"] = 1  # the runtime's greedy path; temperature 0 is not a valid runtime temperature
    else:  # top_p must be explicit: the runtime reads top_k=0 with top_p=0 as greedy
        kw.update(temperature=params.temperature, top_p=params.top_p)
    if params.presence_penalty:
        kw["presence_penalty"] = params.presence_penalty
    if params.frequency_penalty:
        kw["frequency_penalty"] = params.frequency_penalty
    if params.logprobs:  # the library's logprobs=k returns the sampled token's logprob plus the top k
        kw["logprobs"] = max(params.top_logprobs, 1)
    if params.logit_bias:
        kw["embedding_bias"] = embedding_bias(params.logit_bias, vocab_size)
    min_tokens = getattr(params, "min_tokens", 0)  # a field once our SamplingParams carries it
    if min_tokens:
        kw["min_tokens"] = min_tokens
    return kw


def embedding_bias(logit_bias: dict[int, float], vocab_size: int):
    """OpenAI logit_bias as the library's per-request bias added to the logits: float32 [vocab_size]."""
    import torch  # noqa: PLC0415  (the library's own tensor type; only requests with a bias need it)

    bias = torch.zeros(vocab_size, dtype=torch.float32)
    for token, value in logit_bias.items():
        bias[token] = -math.inf if value <= BAN else value
    return bias


def llm_kwargs(manifest: TrtLlmManifest, kv_cache_config_cls: Any) -> dict[str, Any]:
    """Keyword arguments of tensorrt_llm._tensorrt_engine.LLM besides model and tokenizer."""
    return {
        "tensor_parallel_size": manifest.tensor_parallel_size,
        "pipeline_parallel_size": manifest.pipeline_parallel_size,
        "kv_cache_config": kv_cache_config_cls(free_gpu_memory_fraction=manifest.kv_cache_free_gpu_memory_fraction,
                                               enable_block_reuse=True),
        "enable_chunked_prefill": True,  # the engine is built with paged context FMHA for this
        "gather_generation_logits": manifest.gather_generation_logits,
    }


def end_id_of(eos_token_id: int | None, stop_ids: frozenset[int]) -> int:
    """The library's end_id: the tokenizer's EOS when it is a stop token, else the smallest stop token."""
    if eos_token_id is not None and eos_token_id in stop_ids:
        return eos_token_id
    return min(stop_ids)


def sampled(token: int, entry: Any, top_k: int) -> Sampled:
    """One token with its logprobs from a CompletionOutput.logprobs entry: {token id: Logprob(logprob, rank)}
    on the 1.0 TensorRT flow (the top k by rank plus the sampled token), or a bare float (logprob only)."""
    if entry is None:
        return Sampled(token)
    if isinstance(entry, (int, float)):
        return Sampled(token, float(entry), [])
    own = entry.get(token)
    ranked = sorted(entry.items(), key=lambda kv: (kv[1].rank if kv[1].rank is not None else math.inf,
                                                   -kv[1].logprob))
    top = [(t, lp.logprob) for t, lp in ranked if lp.rank is None or lp.rank <= top_k][:top_k]
    return Sampled(token, own.logprob if own is not None else -math.inf, top)


class StreamReader:
    """Feeds a job's choices from the library's streamed CompletionOutputs (one RequestOutput per step)."""

    def __init__(self, job: Job, vocab: Vocab, end_id: int):
        self.job, self.vocab, self.end_id = job, vocab, end_id
        self.seen = [0] * len(job.choices)  # tokens of each choice already fed
        self.top_k = job.params.top_logprobs if job.params.logprobs else 0

    def read(self, outputs: Sequence[Any]) -> None:
        """Feed what each output produced since the last response."""
        for out in outputs:
            choice = self.job.choices[out.index]
            new = list(out.token_ids[self.seen[out.index]:])
            self.seen[out.index] = max(self.seen[out.index], len(out.token_ids))
            entries = _logprob_entries(out, len(new)) if self.job.params.logprobs else [None] * len(new)
            for token, entry in zip(new, entries):
                if choice.finished:  # our stop string matched; the rest is being aborted
                    break
                choice.accept(sampled(token, entry, self.top_k), self.vocab, self.job.params.ignore_eos)
            if out.finish_reason is not None:
                self.end(choice, out.finish_reason, out.stop_reason)

    def finish(self) -> None:
        """After the library's final response every choice must have ended."""
        open_ = [c.index for c in self.job.choices if not c.finished]
        if open_:
            raise RuntimeError(f"TensorRT-LLM finished the request but not its choices {open_}")

    def end(self, choice: Choice, reason: str | None, stop_reason: Any) -> None:
        if choice.finished:
            return
        if reason not in FINISH_REASONS:
            raise RuntimeError(f"TensorRT-LLM ended choice {choice.index} with finish_reason={reason!r}")
        # The library may drop the stop token from token_ids; we count it (usage) like our own scheduler does.
        token = stop_reason if isinstance(stop_reason, int) else self.end_id
        if reason == "stop" and token in self.vocab.stop_ids:
            choice.accept(Sampled(token), self.vocab, ignore_eos=False)
        choice.end(FINISH_REASONS[reason])


def _logprob_entries(out: Any, count: int) -> list[Any]:
    """Logprob entries of the last `count` tokens: the library keeps them cumulative or per response."""
    entries = list(out.logprobs or [])
    return entries[len(entries) - count:] if len(entries) >= count else [None] * count


def engine_error(exc: BaseException, *, at_submit: bool) -> BaseException:
    """The library's errors in our vocabulary: length complaints and argument checks are the caller's (400)."""
    text = str(exc)
    lowered = text.lower()
    if "exceed" in lowered and ("length" in lowered or "_len" in lowered):
        return ClientError(text, "messages", "context_length_exceeded")
    if at_submit and isinstance(exc, ValueError):
        return ClientError(text)
    return exc
