"""The plain sampler (full-vocabulary arrays, a full argsort for top_p, one row at a time): the baseline of
bench/sampling.py and the oracle the tests hold runtime.llm.sampling to. It computes in the dtype of the logits it
is given, so that float64 logits give the same algorithm evaluated exactly. In float32 its
128,256-term running sum drifts by up to ~1e-4, which moves draws on near-flat distributions."""
from __future__ import annotations

import numpy as np

from runtime.llm.protocol import SamplingParams
from runtime.llm.sampler import BAN, Sampled  # what a draw returns is the same record on both sides


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def top_p_filter(probs: np.ndarray, top_p: float) -> tuple[np.ndarray, np.ndarray]:
    """Smallest set of tokens whose probability reaches top_p: (token ids, their probabilities), best first."""
    order = np.argsort(-probs, kind="stable")
    sorted_probs = probs[order]
    keep = int(np.searchsorted(np.cumsum(sorted_probs), top_p)) + 1
    return order[:keep], sorted_probs[:keep]


class Sampler:
    def __init__(self, params: SamplingParams, vocab_size: int, choice_index: int = 0):
        self.params = params
        seed = params.seed
        # Same seed + same request -> same output: the stream depends only on (seed, choice index).
        self.rng = np.random.default_rng(None if seed is None else [seed & 0xFFFFFFFFFFFFFFFF, choice_index])
        self.counts = np.zeros(vocab_size, np.int32) if (params.presence_penalty or params.frequency_penalty) else None
        self.bias = None
        if params.logit_bias:
            self.bias = np.zeros(vocab_size, np.float32)  # float32 in both modes
            for token, value in params.logit_bias.items():
                self.bias[token] = -np.inf if value <= BAN else value

    @property
    def plain_greedy(self) -> bool:
        return self.params.greedy and self.counts is None and self.bias is None and not self.params.logprobs

    def process(self, logits: np.ndarray) -> np.ndarray:
        """Logits after penalties and bias (the distribution logprobs report): [vocab]."""
        if self.counts is None and self.bias is None:
            return logits
        logits = logits.astype(logits.dtype, copy=True)
        if self.counts is not None:
            logits -= self.counts * self.params.frequency_penalty + (self.counts > 0) * self.params.presence_penalty
        if self.bias is not None:
            logits += self.bias
        return logits

    def sample(self, logits: np.ndarray) -> Sampled:
        logits = self.process(logits)
        if self.params.greedy:
            token = int(np.argmax(logits))
        else:
            scaled = logits / self.params.temperature
            probs = np.exp(scaled - scaled.max())
            probs /= probs.sum()
            ids, kept = top_p_filter(probs, self.params.top_p) if self.params.top_p < 1.0 else (None, probs)
            u = self.rng.random() * kept.sum()
            pick = min(int(np.searchsorted(np.cumsum(kept), u, side="right")), len(kept) - 1)
            token = int(ids[pick]) if ids is not None else pick
        self.observe(token)
        return self._with_logprobs(token, logits)

    def observe(self, token: int) -> None:
        if self.counts is not None:
            self.counts[token] += 1

    def _with_logprobs(self, token: int, logits: np.ndarray) -> Sampled:
        if not self.params.logprobs:
            return Sampled(token)
        lp = log_softmax(logits)
        k = self.params.top_logprobs
        top = None
        if k:
            best = np.argpartition(-lp, k - 1)[:k] if k < lp.size else np.arange(lp.size)
            best = best[np.argsort(-lp[best], kind="stable")]
            top = [(int(t), float(lp[t])) for t in best]
        return Sampled(token, float(lp[token]), top)


def greedy_rows(logits: np.ndarray) -> np.ndarray:
    """Batched argmax for rows without penalties, bias or logprobs: logits [rows, vocab] -> [rows]."""
    return logits.argmax(axis=-1)
