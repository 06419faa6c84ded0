"""min_tokens (a vLLM / TensorRT-LLM extension): a choice cannot end before it has generated min_tokens tokens.

End-of-sequence ids are banned from the logits of a choice's first min_tokens samples, as vLLM's
MinTokensLogitsProcessor does; stop strings are not matched on those tokens (runtime.llm.sequence.Choice).
"""
from __future__ import annotations

from typing import Any

import numpy as np


class MinTokensSampler:
    """Wraps a choice's sampler: bans the stop ids for its first `min_tokens` samples, then steps aside."""

    def __init__(self, inner: Any, min_tokens: int, stop_ids: frozenset[int]):
        self.inner, self.remaining = inner, min_tokens
        self.stop_ids = np.array(sorted(stop_ids), dtype=np.int64)

    @property
    def plain_greedy(self) -> bool:  # the scheduler's batched argmax would not see the ban
        return self.remaining <= 0 and self.inner.plain_greedy

    def sample(self, logits: np.ndarray) -> Any:
        if self.remaining > 0:
            self.remaining -= 1
            logits = logits.astype(np.float32, copy=True)
            logits[self.stop_ids[self.stop_ids < logits.shape[-1]]] = -np.inf
        return self.inner.sample(logits)

    def __getattr__(self, name: str) -> Any:  # params, observe, ... of the wrapped sampler
        return getattr(self.inner, name)


def with_min_tokens(sampler: Any, min_tokens: int, stop_ids: frozenset[int]) -> Any:
    return MinTokensSampler(sampler, min_tokens, stop_ids) if min_tokens > 0 and stop_ids else sampler
