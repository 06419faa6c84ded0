"""Incremental detokenization: token bytes through an incremental UTF-8 decoder.

A multi-byte character split across tokens is held back until complete, so streamed deltas concatenate to
exactly the text of the whole sequence (the same decoder with final=True). Special tokens add no text.
"""
from __future__ import annotations

import codecs
from typing import Sequence


class IncrementalDetokenizer:
    def __init__(self, token_bytes: Sequence[bytes], special_ids: frozenset[int]):
        self._bytes, self._special = token_bytes, special_ids
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def add(self, token_id: int) -> str:
        if token_id in self._special:
            return ""
        return self._decoder.decode(self._bytes[token_id])

    def flush(self) -> str:
        """Text still held back at the end of the sequence (an incomplete character becomes U+FFFD)."""
        return self._decoder.decode(b"", final=True)


def detokenize(token_ids: Sequence[int], token_bytes: Sequence[bytes], special_ids: frozenset[int]) -> str:
    detok = IncrementalDetokenizer(token_bytes, special_ids)
    return "".join(detok.add(t) for t in token_ids) + detok.flush()
