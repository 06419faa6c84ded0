"""Which KV slot a sequence gets, and which cached prompt prefix it can reuse (pure bookkeeping, no tensors).

Every slot is a row of the engine's KV buffers. A running slot belongs to one sequence; an idle slot keeps the
tokens its last sequence left in the cache, so a later prompt that starts with them (block-aligned, like vLLM's
automatic prefix caching and TensorRT-LLM's KV block reuse) prefills only the rest. The source can be idle or
running: a running slot's prompt is in its cache from its prefill on.

The engine decodes the rows from the lowest to the highest running slot together, so a new sequence takes the free
slot that widens that range least (a free row inside it costs nothing; one further out makes every decode step
compute the rows between), and among those the least recently used: idle slots are an LRU of cached prompts, and
with nothing running every slot is a candidate, so at low concurrency a conversation's cache outlives many
unrelated requests.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

PREFIX_BLOCK = 16  # tokens; a reused prefix is a whole number of blocks


@dataclass(frozen=True)
class Claim:
    slot: int           # where the sequence's cache lives
    reused: int = 0     # leading prompt tokens already in the cache (0: prefill everything)
    source: int = -1    # the slot holding them; == slot: in place, else copy them into `slot` first

    @property
    def copy_needed(self) -> bool:
        return self.reused > 0 and self.source != self.slot


@dataclass
class PrefixStats:
    queries: int = 0
    hits: int = 0
    reused_tokens: int = 0
    prompt_tokens: int = 0


class SlotTable:
    def __init__(self, slots: int, block: int = PREFIX_BLOCK, reuse: bool = True):
        self.slots, self.block, self.reuse = slots, block, reuse
        self.stats = PrefixStats()
        self.reset()

    def reset(self) -> None:
        self.running = np.zeros(self.slots, bool)
        self.cached: list[np.ndarray] = [np.zeros(0, np.int64) for _ in range(self.slots)]
        self.last_used = np.zeros(self.slots, np.int64)  # LRU clock per slot
        self._clock = 0

    def available(self) -> int:
        return int(self.slots - self.running.sum())

    def claim(self, prompt: Sequence[int]) -> Claim:
        """A slot for a new sequence and the cached prefix it reuses; the slot is running from now on."""
        tokens = np.asarray(prompt, np.int64)
        source, reused = self._best_prefix(tokens)
        slot = self._free_slot()
        if reused and not self.running[source] and self._growth(source) <= self._growth(slot):
            slot = source  # in place: no copy, and the decoded range grows no more than for the free slot
        self._take(slot, tokens)
        self._count(len(tokens), reused)
        return Claim(slot, reused, source if reused else -1)

    def claim_copy(self, source: int) -> int:
        """A slot for a fork of `source` (n > 1 choices share the prompt's cache)."""
        slot = self._free_slot()
        self._take(slot, self.cached[source])
        return slot

    def release(self, slot: int, kept: Sequence[int]) -> None:
        """The slot's sequence ended; `kept` are the tokens whose keys and values are in its cache."""
        self.running[slot] = False
        self.cached[slot] = np.asarray(kept, np.int64)
        self._touch(slot)

    def running_range(self) -> tuple[int, int]:
        """Rows [low, high) hold every running slot; (0, 0) when none runs."""
        live = np.flatnonzero(self.running)
        return (int(live[0]), int(live[-1]) + 1) if live.size else (0, 0)

    # -- choice ------------------------------------------------------------------------------------------
    def _best_prefix(self, tokens: np.ndarray) -> tuple[int, int]:
        """(slot, reusable tokens) of the longest block-aligned cached prefix; the last prompt token is always
        prefilled (its logits start the generation)."""
        if not self.reuse or len(tokens) <= self.block:
            return -1, 0
        best, best_len = -1, 0
        limit = len(tokens) - 1
        for slot, cached in enumerate(self.cached):
            n = min(len(cached), limit)
            if n < self.block or n <= best_len:
                continue
            same = _common_prefix(cached[:n], tokens[:n])
            if same > best_len or (same == best_len and best >= 0 and self.running[best] and not self.running[slot]):
                best, best_len = slot, same
        aligned = best_len - best_len % self.block
        return (best, aligned) if aligned >= self.block else (-1, 0)

    def _free_slot(self) -> int:
        """The free slot that widens the decoded range least, the least recently used among those."""
        free = np.flatnonzero(~self.running)
        if not free.size:
            raise RuntimeError("no free KV slot: the scheduler admits only what fits")
        growth = self._growth(free)
        cheapest = free[growth == growth.min()]
        return int(cheapest[np.argmin(self.last_used[cheapest])])

    def _growth(self, slots):
        """Rows a decode step would gain if `slots` (one or an array) ran too."""
        low, high = self.running_range()
        if low == high:
            return np.ones_like(slots)
        return np.maximum(low - slots, 0) + np.maximum(slots + 1 - high, 0)

    def _take(self, slot: int, tokens: np.ndarray) -> None:
        self.running[slot] = True
        self.cached[slot] = tokens
        self._touch(slot)

    def _touch(self, slot: int) -> None:
        self._clock += 1
        self.last_used[slot] = self._clock

    def _count(self, prompt_tokens: int, reused: int) -> None:
        self.stats.queries += 1
        self.stats.prompt_tokens += prompt_tokens
        if reused:
            self.stats.hits += 1
            self.stats.reused_tokens += reused


def _common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    differ = np.flatnonzero(a != b)
    return int(differ[0]) if differ.size else len(a)
