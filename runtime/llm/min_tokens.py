"""min_tokens (a vLLM / TensorRT-LLM extension): a choice cannot end before it has generated min_tokens tokens.

End-of-sequence ids are banned from the logits of a choice's first min_tokens samples, as vLLM's
MinTokensLogitsProcessor does; stop strings are not matched on those tokens (runtime.llm.sequence.Choice).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from runtime.llm.sampler import Sampler


class MinTokensSampler:
    """Wraps a choice's sampler: bans the stop ids for its first `min_tokens` samples, then steps aside.

    The ban rides on the sampler's sparse logit bias (bias_ids / bias_values), which both the batched numpy
    sampler and the device sampler apply, so no sampling path has to know about min_tokens."""

    def __init__(self, inner: Any, min_tokens: int, stop_ids: frozenset[int]):
        self.inner, self.remaining = inner, min_tokens
        ids = np.array(sorted(stop_ids), dtype=np.int64)
        self.stop_ids = ids[ids < inner.vocab_size]

    @property
    def bias_ids(self) -> np.ndarray | None:
        if self.remaining <= 0:
            return self.inner.bias_ids
        return self.stop_ids if self.inner.bias_ids is None else np.concatenate([self.inner.bias_ids, self.stop_ids])

    @property
    def bias_values(self) -> np.ndarray | None:
        if self.remaining <= 0:
            return self.inner.bias_values
        ban = np.full(len(self.stop_ids), -np.inf, np.float32)  # last, so it wins over a bias on the same id
        return ban if self.inner.bias_values is None else np.concatenate([self.inner.bias_values, ban])

    def adjust(self, row: np.ndarray) -> None:
        Sampler.adjust(self, row)  # type: ignore[arg-type]  (reads params, seen and the bias above)

    def observe(self, token: int) -> None:
        self.remaining -= 1
        self.inner.observe(token)

    def __getattr__(self, name: str) -> Any:  # params, seen, rng, ... of the wrapped sampler
        return getattr(self.inner, name)


def with_min_tokens(sampler: Any, min_tokens: int, stop_ids: frozenset[int]) -> Any:
    return MinTokensSampler(sampler, min_tokens, stop_ids) if min_tokens > 0 and stop_ids else sampler
