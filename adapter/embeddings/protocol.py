"""Wire models and pure helpers of POST /v1/embeddings, fields ordered like the OpenAI reference.

`input` is checked here (not by a pydantic union) so that every bad shape gets one clear message with
param "input". Checks that need the model (vocabulary, embedding size) use EmbeddingModelInfo, read from the
client-facing model's config parameters; length limits are checked by the real tokenizer inside Triton.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field

from adapter.errors import invalid_request
from adapter.protocol import OpenAIRequest
from runtime.embeddings.tokenization import check_input_count
from runtime.errors import ClientError

_SHAPES = "a string, an array of strings, an array of integers, or an array of arrays of integers"


class EmbeddingRequest(OpenAIRequest):
    input: Any
    model: str
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None
    truncate: bool = False  # extension: embed the first max-input tokens of a too-long input instead of a 400


@dataclass(frozen=True)
class EmbeddingInputs:
    texts: list[str]  # exactly one of texts / token_ids is non-empty
    token_ids: list[list[int]]

    def __len__(self) -> int:
        return len(self.texts) or len(self.token_ids)


@dataclass(frozen=True)
class EmbeddingModelInfo:
    embedding_size: int
    vocab_size: int
    normalized: bool

    @classmethod
    def from_parameters(cls, params: dict[str, str]) -> "EmbeddingModelInfo":
        return cls(int(params["embedding_size"]), int(params["vocab_size"]), params.get("normalized") == "true")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_count(items: list) -> None:
    try:
        check_input_count(len(items))
    except ClientError as exc:
        raise invalid_request(exc.message, exc.param, exc.code) from exc


def parse_input(raw: Any) -> EmbeddingInputs:
    """OpenAI's four input shapes -> texts or token-id lists; 400 (param "input") on anything else."""
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise invalid_request(f"'input' must be a non-empty {_SHAPES}.", "input")
    if all(isinstance(item, str) for item in raw):
        _check_count(raw)
        if any(item == "" for item in raw):
            raise invalid_request("'input' must not contain empty strings.", "input")
        if not all(_is_unicode(item) for item in raw):  # e.g. a lone surrogate escape ("\ud800") in the JSON
            raise invalid_request("'input' must be valid Unicode text.", "input")
        return EmbeddingInputs(list(raw), [])
    if all(_is_int(item) for item in raw):
        return EmbeddingInputs([], [list(raw)])
    if all(isinstance(item, list) and all(_is_int(t) for t in item) for item in raw):
        _check_count(raw)
        if any(not item for item in raw):
            raise invalid_request("'input' must not contain empty arrays of token ids.", "input")
        return EmbeddingInputs([], [list(item) for item in raw])
    raise invalid_request(f"'input' must be {_SHAPES}.", "input")


def check_against_model(inputs: EmbeddingInputs, dimensions: int | None, info: EmbeddingModelInfo) -> None:
    for index, ids in enumerate(inputs.token_ids):
        bad = next((t for t in ids if not 0 <= t < info.vocab_size), None)
        if bad is not None:
            raise invalid_request(f"input[{index}] contains token id {bad}, outside this model's vocabulary "
                                  f"(0..{info.vocab_size - 1}).", "input", "invalid_token_id")
    if dimensions is not None and dimensions > info.embedding_size:
        raise invalid_request(f"'dimensions' is {dimensions}, larger than this model's embedding size "
                              f"({info.embedding_size}).", "dimensions")


def triton_inputs(inputs: EmbeddingInputs, truncate: bool) -> dict[str, np.ndarray]:
    """The ensemble's inputs: TEXT [N] or TOKEN_IDS [N, L] padded with -1 (the other one empty)."""
    width = max((len(ids) for ids in inputs.token_ids), default=0)
    token_ids = np.full((len(inputs.token_ids), width), -1, dtype=np.int64)
    for row, ids in enumerate(inputs.token_ids):
        token_ids[row, :len(ids)] = ids
    texts = np.array([t.encode("utf-8") for t in inputs.texts], dtype=np.object_)
    return {"TEXT": texts, "TOKEN_IDS": token_ids, "TRUNCATE": np.array([truncate])}


def shorten(vectors: np.ndarray, dimensions: int | None, renormalize: bool) -> np.ndarray:
    """Keep the first `dimensions` components (Matryoshka style), then L2-normalize again if the model does."""
    if dimensions is None or dimensions >= vectors.shape[1]:
        return vectors
    cut = vectors[:, :dimensions]
    if not renormalize:
        return cut
    return cut / np.clip(np.linalg.norm(cut, axis=1, keepdims=True), 1e-12, None)


def encode_vector(vector: np.ndarray, encoding_format: str) -> Any:
    if encoding_format == "base64":  # little-endian float32, as OpenAI sends it
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.astype(np.float32)  # orjson writes float32 arrays with their shortest exact repr


def embedding_response(vectors: np.ndarray, token_counts: np.ndarray, model: str, encoding_format: str) -> dict:
    data = [{"object": "embedding", "index": i, "embedding": encode_vector(v, encoding_format)}
            for i, v in enumerate(vectors)]
    tokens = int(token_counts.sum())
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
