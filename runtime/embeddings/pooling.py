"""Pooling of token states into one vector per input, as sentence-transformers' Pooling + Normalize modules."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np


class PoolingMode(str, Enum):
    MEAN = "mean"
    CLS = "cls"


@dataclass(frozen=True)
class PoolingSpec:
    mode: PoolingMode = PoolingMode.MEAN
    normalize: bool = True


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    # hidden: [B, L, H], mask: [B, L] -> [B, H]; padded positions do not count.
    weights = mask[:, :, None].astype(hidden.dtype)
    summed = (hidden * weights).sum(axis=1)
    return summed / np.clip(weights.sum(axis=1), 1e-9, None)


def cls_pool(hidden: np.ndarray) -> np.ndarray:
    return hidden[:, 0]


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.clip(norms, 1e-12, None)


def pool(hidden: np.ndarray, mask: np.ndarray, spec: PoolingSpec) -> np.ndarray:
    pooled = mean_pool(hidden, mask) if spec.mode is PoolingMode.MEAN else cls_pool(hidden)
    pooled = pooled.astype(np.float32, copy=False)
    return l2_normalize(pooled) if spec.normalize else pooled
