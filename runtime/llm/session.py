"""The engine session interface the scheduler talks to: slots, not tensors.

A slot holds one sequence's KV cache inside the engine. The scheduler prefills prompts into slots, decodes
one token for a set of slots, forks a slot (n > 1 choices share a prompt) and releases slots. How the cache
is laid out (padded batch tensors for ONNX Runtime, paged blocks for a TensorRT engine) stays behind this
interface, so another engine replaces ONNX Runtime without touching scheduling or sampling.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np


class EngineSession(ABC):
    vocab_size: int

    @abstractmethod
    def prefill(self, slots: Sequence[int], prompts: Sequence[Sequence[int]]) -> np.ndarray:
        """Run the prompts (batched) into empty slots; returns next-token logits [len(slots), vocab] float32."""

    @abstractmethod
    def decode(self, slots: Sequence[int], tokens: Sequence[int]) -> np.ndarray:
        """Append one token to each slot (batched); returns next-token logits [len(slots), vocab] float32."""

    @abstractmethod
    def fork(self, src: int, dst: Sequence[int]) -> None:
        """Copy slot src's cache into the empty slots dst."""

    @abstractmethod
    def release(self, slot: int) -> None:
        """Free a slot's cache; the slot may be prefilled again right away."""
