"""One choice's sampling state (parameters, its own RNG stream, the tokens it produced) and what a draw returns.

Both sampling paths read it: the batched numpy one (runtime/llm/sampling.py) and the device one
(runtime/llm/sampling_torch.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runtime.llm.protocol import SamplingParams

BAN = -100.0  # OpenAI: -100 bans the token, +100 makes it (practically) the only choice


@dataclass
class Sampled:
    token_id: int
    logprob: float | None = None
    top: list[tuple[int, float]] | None = None  # (token id, logprob), best first


class Sampler:
    """One choice's sampling state: parameters, its own RNG, the tokens it has produced (for penalties)."""

    def __init__(self, params: SamplingParams, vocab_size: int, choice_index: int = 0):
        self.params = params
        self.vocab_size = vocab_size
        seed = params.seed
        # Same seed + same request -> same output: the stream depends only on (seed, choice index).
        self.rng = np.random.default_rng(None if seed is None else [seed & 0xFFFFFFFFFFFFFFFF, choice_index])
        self.seen: dict[int, int] | None = {} if (params.presence_penalty or params.frequency_penalty) else None
        self.bias_ids = self.bias_values = None
        if params.logit_bias:
            self.bias_ids = np.fromiter(params.logit_bias, np.int64, len(params.logit_bias))
            self.bias_values = np.array([-np.inf if v <= BAN else v for v in params.logit_bias.values()], np.float32)

    def adjust(self, row: np.ndarray) -> None:
        """Penalties, then bias, in place on one row of logits, through the touched ids only."""
        if self.seen:
            ids = np.fromiter(self.seen, np.int64, len(self.seen))
            counts = np.fromiter(self.seen.values(), np.int64, len(self.seen))
            p = self.params  # float64 arithmetic cast back to float32, as `logits -= counts * f + ...` did
            row[ids] = row[ids] - (counts * p.frequency_penalty + (counts > 0) * p.presence_penalty)
        if self.bias_ids is not None:
            row[self.bias_ids] += self.bias_values

    def observe(self, token: int) -> None:
        if self.seen is not None:
            self.seen[token] = self.seen.get(token, 0) + 1
