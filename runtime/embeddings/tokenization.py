"""Inputs -> right-padded model inputs, with the checks a caller can fail (too long, unknown token ids).

Counts are of the sequence the model reads, special tokens included: they are what `usage` reports and what
the length limit applies to. Token-id inputs are the model input verbatim, as in vLLM, TEI and Triton's OpenAI
frontend: nothing is added, so the ids of `tokenizer(text)` (special tokens included) give the text's vector,
and `usage` counts exactly the ids given.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.errors import ClientError

MAX_INPUTS = 2048  # inputs per request (OpenAI's limit); the encoder's max_batch_size must take them in one call


def check_input_count(count: int) -> None:
    """The one rule on how many inputs a request carries (the adapter applies it before calling Triton too)."""
    if count > MAX_INPUTS:
        raise ClientError(f"'input' has {count} items; at most {MAX_INPUTS} inputs per request.", "input")


@dataclass(frozen=True)
class TokenizedBatch:
    input_ids: np.ndarray  # [N, L] int64, right-padded
    attention_mask: np.ndarray  # [N, L] int64
    token_counts: np.ndarray  # [N] int64, special tokens included


def too_long(index: int, count: int, limit: int) -> ClientError:
    return ClientError(
        f"input[{index}] has {count} tokens, more than this model's maximum input length of {limit} tokens. "
        "Shorten the input, or set \"truncate\": true to embed only its first tokens.",
        "input", "context_length_exceeded")


class EmbeddingTokenizer:
    def __init__(self, path: str | Path, max_length: int):
        from transformers import AutoTokenizer  # noqa: PLC0415  (heavy)

        self._tok = AutoTokenizer.from_pretrained(str(path))
        self._tok.padding_side = "right"  # batching trims rows by their length from the right
        self.max_length = max_length
        self.vocab_size = len(self._tok)

    def encode_texts(self, texts: list[str], truncate: bool) -> TokenizedBatch:
        rows = self._tok(texts, add_special_tokens=True, truncation=False)["input_ids"]
        long = [i for i, ids in enumerate(rows) if len(ids) > self.max_length]
        if long and not truncate:
            raise too_long(long[0], len(rows[long[0]]), self.max_length)
        if long:  # the tokenizer's own truncation keeps the closing special tokens, as sentence-transformers does
            cut = self._tok([texts[i] for i in long], add_special_tokens=True, truncation=True,
                            max_length=self.max_length)["input_ids"]
            for i, ids in zip(long, cut):
                rows[i] = ids
        return self._pad(rows)

    def encode_token_ids(self, token_lists: list[list[int]], truncate: bool) -> TokenizedBatch:
        """The ids are the model input as given (no special tokens added); truncation keeps the first ones."""
        rows = []
        for index, ids in enumerate(token_lists):
            self._check_vocabulary(index, ids)
            if len(ids) > self.max_length and not truncate:
                raise too_long(index, len(ids), self.max_length)
            rows.append(list(ids[:self.max_length]))
        return self._pad(rows)

    def _check_vocabulary(self, index: int, ids: list[int]) -> None:
        bad = [t for t in ids if not 0 <= t < self.vocab_size]
        if bad:
            raise ClientError(f"input[{index}] contains token id {bad[0]}, outside this model's vocabulary "
                              f"(0..{self.vocab_size - 1}).", "input", "invalid_token_id")

    def _pad(self, rows: list[list[int]]) -> TokenizedBatch:
        # [N, L_longest]: pad id right of each row, mask 0 there
        counts = np.array([len(r) for r in rows], dtype=np.int64)
        ids = np.full((len(rows), int(counts.max())), self._tok.pad_token_id or 0, dtype=np.int64)
        mask = np.zeros_like(ids)
        for i, row in enumerate(rows):
            ids[i, :len(row)] = row
            mask[i, :len(row)] = 1
        return TokenizedBatch(ids, mask, counts)


def unpad_token_ids(padded: np.ndarray) -> list[list[int]]:
    """TOKEN_IDS wire form [N, L], each row ended by -1 padding -> lists (other negatives stay, to be refused)."""
    rows = []
    for row in np.asarray(padded, dtype=np.int64).reshape(len(padded), -1):
        pad = np.flatnonzero(row == -1)
        rows.append(row[:pad[0] if len(pad) else len(row)].tolist())
    return rows


def tokenize_request(tokenizer: EmbeddingTokenizer, texts: list[str], token_ids: np.ndarray,
                     truncate: bool) -> TokenizedBatch:
    """One request carries texts or token-id lists (the other input is empty)."""
    if len(texts) and len(token_ids):
        raise ClientError("Send either texts or token ids in one request, not both.", "input")
    check_input_count(len(texts) or len(token_ids))
    if len(texts):
        return tokenizer.encode_texts(texts, truncate)
    if len(token_ids):
        lists = unpad_token_ids(token_ids)
        if not all(lists):
            raise ClientError("'input' must not contain an empty list of token ids.", "input")
        return tokenizer.encode_token_ids(lists, truncate)
    raise ClientError("'input' must not be empty.", "input")
