"""Many requests -> few engine calls: rows sorted by length, cut into chunks of bounded padded size.

Triton's dynamic batcher hands the engine model several requests at once (each a [n_i, L_i] right-padded
block). Sorting all rows by length before cutting chunks keeps padding small (short rows are not padded to
the longest row of the merge) and bounds memory for large merges; on CPU, chunks of about 1k padded tokens
also ran faster than larger ones (bench/results/embeddings.md). Results go back in request order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runtime.embeddings.pooling import PoolingSpec, pool
from runtime.embeddings.session import EncoderSession


@dataclass(frozen=True)
class TokenBlock:
    input_ids: np.ndarray  # [n, L] int64, right-padded
    attention_mask: np.ndarray  # [n, L] int64


def _stack(blocks: list[TokenBlock]) -> tuple[np.ndarray, np.ndarray]:
    # all rows padded to the longest block: [N, L_max]
    width = max(b.input_ids.shape[1] for b in blocks)
    ids = np.concatenate([np.pad(b.input_ids, ((0, 0), (0, width - b.input_ids.shape[1]))) for b in blocks])
    mask = np.concatenate([np.pad(b.attention_mask, ((0, 0), (0, width - b.attention_mask.shape[1])))
                           for b in blocks])
    return ids.astype(np.int64, copy=False), mask.astype(np.int64, copy=False)


def plan_chunks(lengths: np.ndarray, max_batch_tokens: int, tiers: tuple[int, ...] = ()) -> list[np.ndarray]:
    """Row indices per engine call, shortest rows first; each call's rows x longest row <= max_batch_tokens.

    With length tiers (a TensorRT engine's optimization profiles, builders/profiles.py) a row counts as the
    tier it falls in, so every call fits one profile: rows <= max_batch_tokens // tier length."""
    order = np.argsort(lengths, kind="stable")
    budget = np.asarray(tiers)[np.searchsorted(tiers, lengths)] if tiers else lengths
    chunks, start = [], 0
    for end in range(1, len(order) + 1):
        longest = int(budget[order[end - 1]])
        if end - start > 1 and (end - start) * longest > max_batch_tokens:
            chunks.append(order[start:end - 1])
            start = end - 1
    if start < len(order):
        chunks.append(order[start:])
    return chunks


def encode_blocks(blocks: list[TokenBlock], session: EncoderSession, spec: PoolingSpec,
                  max_batch_tokens: int = 1024, tiers: tuple[int, ...] = ()) -> list[np.ndarray]:
    """One [n_i, H] float32 array per block, in block order."""
    ids, mask = _stack(blocks)
    lengths = mask.sum(axis=1)
    vectors: np.ndarray | None = None
    for rows in plan_chunks(lengths, max_batch_tokens, tiers):
        width = max(int(lengths[rows].max()), 1)
        chunk_mask = mask[rows, :width]
        out = session.run(ids[rows, :width], chunk_mask)
        pooled = out if getattr(session, "pools", False) else pool(out, chunk_mask, spec)
        if vectors is None:
            vectors = np.empty((len(ids), pooled.shape[1]), dtype=np.float32)
        vectors[rows] = pooled
    splits = np.cumsum([b.input_ids.shape[0] for b in blocks])[:-1]
    return np.split(vectors, splits)
