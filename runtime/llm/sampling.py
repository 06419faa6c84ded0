"""Sampling for a batch of rows: penalties, logit_bias, temperature, top_k, top_p, seeded RNG, logprobs.

Nothing here walks the vocabulary more than it must (Llama-3 has 128,256 tokens):
  - penalties and logit_bias touch only the few token ids seen or biased (sparse, in place);
  - one torch softmax (max, exp and sum in one vectorized kernel, on torch's intra-op threads) and one block-sum
    for all sampled rows together;
  - temperature sampling inverts the CDF through per-block sums, then inside one block of 128 ids;
  - top_p, top_k and top_logprobs sort only a candidate set (the ids above a threshold), lowered only when the
    candidates hold less than the nucleus or fewer than k ids.
Same tokens as the plain full-vocabulary sampler (bench/reference_sampler.py, the tests' oracle) at the same
seed: same RNG stream per (seed, choice), same inverse-CDF pick in id order, same top_p nucleus; the sums are
formed in another order, so a pick can differ only where the draw lands within float rounding of a token's
boundary.

`sample_rows(logits, samplers)` dispatches on the array type: numpy here, a torch tensor on its device in
runtime.llm.sampling_torch.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from runtime.llm import sampling_torch
from runtime.llm.sampler import Sampled, Sampler

__all__ = ["Sampled", "Sampler", "sample", "sample_rows"]

BLOCK = 128  # ids per block of the inverse-CDF walk
FIRST_CUT = 1e-3  # first candidate threshold, relative to the heaviest block; each retry cuts 1e3x lower
TOP_LOGPROB_NATS = 8.0  # first candidate window for top_logprobs, below the best logit; doubled on retry


def sample(sampler: Sampler, logits: np.ndarray) -> Sampled:
    """One row (left untouched)."""
    return sample_rows(np.array(logits, np.float32, ndmin=2), [sampler])[0]


@functools.singledispatch
def sample_rows(logits, samplers: list[Sampler]) -> list[Sampled]:
    raise TypeError(f"no sampler for logits of type {type(logits).__name__}")


sample_rows.register(torch.Tensor, sampling_torch.sample_rows)  # device logits stay on their device


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
    """x [rows, vocab] processed logits (overwritten with weights) -> one token per row, each from its own RNG.

    torch's softmax does the dense work: max, exp and sum in one vectorized kernel on torch's intra-op threads (the
    sampler runs between engine steps, so they compete with nothing), in place on x: about 2x faster than numpy's
    separate max / subtract / exp passes. The weights are normalized; the draw only needs them in proportion."""
    vocab = x.shape[1]
    t = torch.from_numpy(x)
    temperature = torch.tensor([[s.params.temperature] for s in samplers])  # [rows, 1]
    if (temperature != 1.0).any():
        t.div_(temperature)  # x / T, as the reference sampler computes it (same rounding, same draws)
    torch.softmax(t, 1, out=t)
    blocks = block_sums(t)  # [rows, ceil(vocab / BLOCK)]
    tokens, bn = np.empty(len(samplers), np.int64), blocks.numpy()
    top_k = [s.params.top_k if s.params.top_k < vocab else 0 for s in samplers]
    filtered = [i for i, s in enumerate(samplers) if s.params.top_p < 1.0 or top_k[i]]
    plain = [i for i, s in enumerate(samplers) if not (s.params.top_p < 1.0 or top_k[i])]
    for i, first in zip(filtered, first_candidates(x, bn, filtered)):
        s = samplers[i]
        ids, kept = nucleus(x[i], bn[i], s.params.top_p, top_k[i], first)
        tokens[i] = ids[pick(kept, s.rng.random() * kept.sum(dtype=np.float64))]
    if plain:
        r = torch.tensor([samplers[i].rng.random() for i in plain], dtype=torch.float64)
        tokens[plain] = pick_rows(t, blocks, torch.tensor(plain), r)
    return tokens


def block_sums(w: torch.Tensor) -> torch.Tensor:
    """[rows, vocab] -> [rows, ceil(vocab / BLOCK)] sums of BLOCK consecutive ids."""
    rows, vocab = w.shape
    if vocab % BLOCK == 0:
        return w.view(rows, vocab // BLOCK, BLOCK).sum(2)
    return torch.from_numpy(np.add.reduceat(w.numpy(), np.arange(0, vocab, BLOCK), axis=1))


def pick(weights: np.ndarray, u: float) -> int:
    """Inverse CDF: the first index whose running sum exceeds u (the last one if rounding leaves u past the end)."""
    return min(int(np.searchsorted(np.cumsum(weights, dtype=np.float64), u, side="right")), len(weights) - 1)


def pick_rows(w: torch.Tensor, blocks: torch.Tensor, rows: torch.Tensor, r: torch.Tensor) -> np.ndarray:
    """Inverse CDF in id order for the given rows at once: the block whose running sum passes u = r x total, then
    the first id inside it whose running sum passes what is left (the last id if rounding leaves u past it)."""
    vocab = w.shape[1]
    prefix = torch.cumsum(blocks.index_select(0, rows), 1, dtype=torch.float64)  # [rows, blocks]
    u = r[:, None] * prefix[:, -1:]
    b = torch.searchsorted(prefix, u, right=True).clamp_(max=prefix.shape[1] - 1)  # [rows, 1]
    left = u - torch.where(b > 0, prefix.gather(1, (b - 1).clamp_(min=0)), 0.0)
    ids = b * BLOCK + torch.arange(BLOCK)  # [rows, BLOCK]; the last block may run past the vocabulary
    inside = torch.take(w, rows[:, None] * vocab + ids.clamp(max=vocab - 1)) * (ids < vocab)  # w flat, in place
    k = torch.searchsorted(torch.cumsum(inside, 1, dtype=torch.float64), left, right=True)
    return torch.minimum(ids[:, 0] + k[:, 0], (ids[:, -1] + 1).clamp_(max=vocab) - 1).numpy()


def nucleus(w: np.ndarray, blocks: np.ndarray, top_p: float, top_k: int,
            ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The top_k best ids (0: all), then the smallest best-first prefix of them holding top_p of their mass:
    (ids, weights), best first, ties by id. Sorts only the ids above a threshold, lowered until enough, and looks
    for them only in the blocks whose sum reaches it (a sum of weights is at least each of them). ids: the
    candidates at the first threshold when already found (first_candidates)."""
    total = blocks.sum(dtype=np.float64)
    cut = FIRST_CUT * blocks.max()
    while True:
        if ids is None:
            ids = above(w, blocks, cut) if cut > 0 else np.arange(len(w))
        mass = w[ids].sum(dtype=np.float64)
        enough = len(ids) >= top_k if top_k else mass >= top_p * total
        if enough or cut == 0:
            break
        cut, ids = (cut * 1e-3 if cut > 1e-30 else 0.0), None
    ids = ids[np.argsort(-w[ids], kind="stable")]
    if top_k:
        ids = ids[:top_k]
        total = w[ids].sum(dtype=np.float64)
    kept = w[ids]
    keep = int(np.searchsorted(np.cumsum(kept, dtype=np.float64), top_p * total)) + 1
    return ids[:keep], kept[:keep]


def above(w: np.ndarray, blocks: np.ndarray, cut: float) -> np.ndarray:
    """The ids weighing at least cut, in id order, looked for only in the blocks whose sum reaches cut (unless most
    do): a few thousand ids on peaked rows instead of the whole row (np.nonzero of 128,256 flags: ~25 us)."""
    if len(w) % BLOCK:
        return np.flatnonzero(w >= cut)
    hit = np.flatnonzero(blocks >= cut)
    if len(hit) * 8 > len(blocks):
        return np.flatnonzero(w >= cut)
    rows, cols = np.divmod(np.flatnonzero(w.reshape(-1, BLOCK)[hit] >= cut), BLOCK)  # 2-d np.nonzero is slow
    return hit[rows] * BLOCK + cols


def first_candidates(w: np.ndarray, blocks: np.ndarray, rows: list[int]) -> list[np.ndarray | None]:
    """above() at nucleus()'s first threshold for several rows at once (a dozen numpy calls in all, not per row).
    None for every row when the vocabulary is not whole blocks or most blocks reach the cut."""
    if not rows or w.shape[1] % BLOCK:
        return [None] * len(rows)
    cut = FIRST_CUT * blocks[rows].max(1)
    r, b = np.divmod(np.flatnonzero(blocks[rows] >= cut[:, None]), blocks.shape[1])  # (row, block), by row
    if len(r) * 8 > blocks[rows].size:
        return [None] * len(rows)
    p, col = np.divmod(np.flatnonzero(w.reshape(len(w), -1, BLOCK)[np.asarray(rows)[r], b] >= cut[r, None]), BLOCK)
    return np.split(b[p] * BLOCK + col, np.searchsorted(r[p], np.arange(1, len(rows))))


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
