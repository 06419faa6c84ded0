"""The engine session interface the scheduler talks to: slots, not tensors.

A slot is one row of the engine's KV cache. The scheduler prefills a prompt into a slot (after the part of it
that is already there), decodes one token for a set of slots and copies a slot's leading positions into others
(n > 1 choices share a prompt; a prompt reuses another's prefix). Which slot gets which sequence is the
scheduler's business (runtime/llm/slot_table.py); how the cache is laid out stays behind this interface.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np


class EngineSession(ABC):
    vocab_size: int
    slots: int  # KV rows: the most sequences decoded together

    @abstractmethod
    def prefill(self, slot: int, tokens: Sequence[int], start: int = 0, logits: bool = True) -> np.ndarray | None:
        """Run tokens[start:] into the slot, whose first `start` positions already hold tokens[:start];
        returns the next-token logits [vocab] float32, or None without `logits` (the layers only: the prompt's
        last token then goes through a decode step, which gives its logits; start may then equal len(tokens))."""

    @abstractmethod
    def decode(self, slots: Sequence[int], tokens: Sequence[int]) -> np.ndarray:
        """Append one token to each slot (batched); returns next-token logits [len(slots), vocab] float32.
        Other slots keep their cached positions."""

    @abstractmethod
    def copy(self, source: int, targets: Sequence[int], length: int) -> None:
        """Copy the first `length` positions of slot `source` into each target slot."""
