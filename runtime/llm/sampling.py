"""Sampling for a batch of rows: penalties, logit_bias, temperature, top_k, top_p, seeded RNG, logprobs.

Nothing here walks the vocabulary more than it must (Llama-3 has 128,256 tokens):
  - penalties and logit_bias touch only the few token ids seen or biased (sparse, in place);
  - one vectorized max / exp / block-sum for all sampled rows together;
  - temperature sampling inverts the CDF through per-block sums, then inside one block of 128 ids;
  - top_p, top_k and top_logprobs sort only a candidate set (the ids above a threshold), lowered only when the
    candidates hold less than the nucleus or fewer than k ids.
Same tokens as the earlier one-row-at-a-time sampler at the same seed (tests/unit/reference_sampler.py): same
RNG stream per (seed, choice), same inverse-CDF pick in id order, same top_p nucleus; the sums are formed in
another order, so a pick can differ only where the draw lands within float rounding of a token's boundary.

`sample_rows(logits, samplers)` dispatches on the array type: numpy here, a torch tensor on its device in
runtime.llm.sampling_torch (registered when that module is imported).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from runtime.llm.protocol import SamplingParams

BAN = -100.0  # OpenAI: -100 bans the token, +100 makes it (practically) the only choice
BLOCK = 128  # ids per block of the inverse-CDF walk
CHUNK = 4  # rows per pass over the vocabulary (4 x 128,256 float32 = 2 MB, this machine's L2)
FIRST_CUT = 1e-3  # first candidate threshold, relative to the best token's weight; each retry cuts 1e3x lower
TOP_LOGPROB_NATS = 8.0  # first candidate window for top_logprobs, below the best logit; doubled on retry


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

    def sample(self, logits: np.ndarray) -> Sampled:
        """One row (left untouched: prefill samples n choices from the same row)."""
        return sample_rows(np.array(logits, np.float32, ndmin=2), [self])[0]


@functools.singledispatch
def sample_rows(logits, samplers: list[Sampler]) -> list[Sampled]:
    if type(logits).__module__.startswith("torch"):  # device logits: the torch path registers itself on import
        import runtime.llm.sampling_torch  # noqa: F401, PLC0415
        return sample_rows(logits, samplers)
    raise TypeError(f"no sampler for logits of type {type(logits).__name__}")


@sample_rows.register
def _(logits: np.ndarray, samplers: list[Sampler]) -> list[Sampled]:
    """logits [rows, vocab] float32, row i for samplers[i]; used in place as scratch (the caller's fresh array)."""
    for i, s in enumerate(samplers):
        s.adjust(logits[i])
    greedy = [i for i, s in enumerate(samplers) if s.params.greedy]
    drawn = [i for i, s in enumerate(samplers) if not s.params.greedy]
    # drawing turns its rows into weights in place: keep the processed logits that logprobs report
    processed = {i: logits[i].copy() for i in drawn if samplers[i].params.logprobs}
    tokens = np.empty(len(samplers), np.int64)
    if greedy:
        tokens[greedy] = _rows(logits, greedy).argmax(axis=1)
    if drawn:
        tokens[drawn] = draw_tokens(_rows(logits, drawn), [samplers[i] for i in drawn])
    out = []
    for i, s in enumerate(samplers):
        token = int(tokens[i])
        s.observe(token)
        row = processed.get(i, logits[i])
        out.append(with_logprobs(token, row, s.params.top_logprobs) if s.params.logprobs else Sampled(token))
    return out


def _rows(x: np.ndarray, idx: list[int]) -> np.ndarray:
    return x if len(idx) == len(x) else x[idx]


# -- drawing -----------------------------------------------------------------------------------------------
def draw_tokens(x: np.ndarray, samplers: list[Sampler]) -> np.ndarray:
    """x [rows, vocab] processed logits (overwritten with weights) -> one token per row, each from its own RNG."""
    temperature = np.array([s.params.temperature for s in samplers], np.float32)[:, None]  # [rows, 1]
    scale = (temperature != 1.0).any()
    w, blocks = x, np.empty((len(x), -(-x.shape[1] // BLOCK)), np.float32)  # [rows, vocab / BLOCK]
    for a in range(0, len(x), CHUNK):  # a few rows at a time: each pass finds them still in cache
        c = x[a:a + CHUNK]
        np.subtract(c, c.max(axis=1, keepdims=True), out=c)  # in place: no 16 MB allocation per step
        if scale:
            np.divide(c, temperature[a:a + CHUNK], out=c)
        np.exp(c, out=c)  # unnormalized probabilities, the best token's is 1
        blocks[a:a + CHUNK] = block_sums(c)
    prefix = np.cumsum(blocks, axis=1, dtype=np.float64)  # [rows, blocks]
    tokens = np.empty(len(samplers), np.int64)
    for i, s in enumerate(samplers):
        p = s.params
        top_k = p.top_k if p.top_k < w.shape[1] else 0
        if p.top_p < 1.0 or top_k:
            ids, kept = nucleus(w[i], prefix[i, -1], p.top_p, top_k)
            tokens[i] = ids[pick(kept, s.rng.random() * kept.sum(dtype=np.float64))]
        else:
            tokens[i] = pick_in_blocks(w[i], prefix[i], s.rng.random())
    return tokens


def block_sums(w: np.ndarray) -> np.ndarray:
    """[rows, vocab] -> [rows, ceil(vocab / BLOCK)] sums of BLOCK consecutive ids."""
    rows, vocab = w.shape
    if vocab % BLOCK == 0:  # BLAS (a matrix-vector product) sums several times faster than np.sum here
        return w.reshape(rows, vocab // BLOCK, BLOCK) @ np.ones(BLOCK, w.dtype)
    return np.add.reduceat(w, np.arange(0, vocab, BLOCK), axis=1)


def pick(weights: np.ndarray, u: float) -> int:
    """Inverse CDF: the first index whose running sum exceeds u (the last one if rounding leaves u past the end)."""
    return min(int(np.searchsorted(np.cumsum(weights, dtype=np.float64), u, side="right")), len(weights) - 1)


def pick_in_blocks(w: np.ndarray, prefix: np.ndarray, r: float) -> int:
    """Inverse CDF over the whole row in id order through the blocks' running sums: one block's cumsum, not the
    row's."""
    u = r * prefix[-1]
    b = min(int(np.searchsorted(prefix, u, side="right")), len(prefix) - 1)
    start = prefix[b - 1] if b else 0.0
    return b * BLOCK + pick(w[b * BLOCK:(b + 1) * BLOCK], u - start)


def nucleus(w: np.ndarray, total: float, top_p: float, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """The top_k best ids (0: all), then the smallest best-first prefix of them holding top_p of their mass:
    (ids, weights), best first, ties by id. Sorts only the ids above a threshold, lowered until enough."""
    cut = FIRST_CUT
    while True:
        ids = np.flatnonzero(w >= cut) if cut > 0 else np.arange(len(w))
        mass = w[ids].sum(dtype=np.float64)
        enough = len(ids) >= top_k if top_k else mass >= top_p * total
        if enough or cut == 0:
            break
        cut = cut * 1e-3 if cut > 1e-30 else 0.0
    ids = ids[np.argsort(-w[ids], kind="stable")]
    if top_k:
        ids = ids[:top_k]
        total = w[ids].sum(dtype=np.float64)
    kept = w[ids]
    keep = int(np.searchsorted(np.cumsum(kept, dtype=np.float64), top_p * total)) + 1
    return ids[:keep], kept[:keep]


# -- logprobs ----------------------------------------------------------------------------------------------
def with_logprobs(token: int, row: np.ndarray, k: int) -> Sampled:
    """Logprobs of the processed logits at temperature 1 (what OpenAI reports): the token's and the k best."""
    best = row.max()
    log_total = np.float32(np.log(np.exp(row - best).sum()))
    logprob = float(row[token] - best - log_total)
    if not k:
        return Sampled(token, logprob)
    window = TOP_LOGPROB_NATS
    ids = np.flatnonzero(row >= best - window)
    while len(ids) < min(k, len(row)):
        window *= 4
        ids = np.flatnonzero(row >= best - window) if window < 1e4 else np.arange(len(row))
    ids = ids[np.argsort(-row[ids], kind="stable")][:k]
    return Sampled(token, logprob, [(int(t), float(row[t] - best - log_total)) for t in ids])
