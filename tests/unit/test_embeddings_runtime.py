"""runtime.embeddings without Triton: pooling, length-sorted re-batching, tokenization limits, params."""
from __future__ import annotations

import numpy as np
import pytest

from builders.embeddings import demo_checkpoint
from runtime.embeddings.batching import TokenBlock, encode_blocks, plan_chunks
from runtime.embeddings.params import EncoderParams, TokenizerParams
from runtime.embeddings.pooling import PoolingMode, PoolingSpec, pool
from runtime.embeddings.session import OrtOptions
from runtime.embeddings.tokenization import EmbeddingTokenizer, tokenize_request, unpad_token_ids
from runtime.errors import ClientError


class PositionwiseSession:
    """Token state = f(token id, position): like a real encoder, padding to the right changes nothing."""

    def __init__(self):
        self.calls: list[tuple[int, int]] = []

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        self.calls.append(input_ids.shape)
        pos = np.arange(input_ids.shape[1])[None, :]
        # [B, L, 3]
        return np.stack([input_ids * 1.0, input_ids * 0.5 + pos, np.sin(input_ids + pos)], axis=-1)


def _block(rows: list[list[int]]) -> TokenBlock:
    width = max(map(len, rows))
    ids = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, :len(r)], mask[i, :len(r)] = r, 1
    return TokenBlock(ids, mask)


def test_mean_pool_ignores_padding_and_normalizes():
    hidden = np.array([[[1.0, 0.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = np.array([[1, 1, 0]])
    np.testing.assert_allclose(pool(hidden, mask, PoolingSpec(PoolingMode.MEAN, False)), [[2.0, 2.0]])
    np.testing.assert_allclose(pool(hidden, mask, PoolingSpec(PoolingMode.MEAN, True)), [[0.5**0.5, 0.5**0.5]])
    np.testing.assert_allclose(pool(hidden, mask, PoolingSpec(PoolingMode.CLS, False)), [[1.0, 0.0]])


def test_plan_chunks_sorts_by_length_and_bounds_padded_size():
    lengths = np.array([50, 3, 40, 4, 5, 60])
    chunks = plan_chunks(lengths, max_batch_tokens=120)
    assert sorted(np.concatenate(chunks).tolist()) == list(range(6))
    for rows in chunks:
        assert len(rows) == 1 or len(rows) * lengths[rows].max() <= 120
    assert [lengths[c].tolist() for c in chunks] == [[3, 4, 5], [40, 50], [60]]


def test_encode_blocks_merges_requests_and_returns_each_its_own_rows():
    blocks = [_block([[5, 6, 7], [8]]), _block([[9, 9, 9, 9, 9, 9]]), _block([[1, 2], [3, 4, 5, 6], [7]])]
    session = PositionwiseSession()
    spec = PoolingSpec(PoolingMode.MEAN, True)
    merged = encode_blocks(blocks, session, spec, max_batch_tokens=8)
    assert len(session.calls) > 1 and all(b * l <= 8 or b == 1 for b, l in session.calls)
    for block, got in zip(blocks, merged):  # same as encoding each request alone
        alone = pool(session.run(block.input_ids, block.attention_mask), block.attention_mask, spec)
        np.testing.assert_allclose(got, alone, rtol=1e-6)


@pytest.fixture(scope="module")
def tokenizer() -> EmbeddingTokenizer:
    return EmbeddingTokenizer(demo_checkpoint(), max_length=16)


def test_texts_count_special_tokens_and_pad_right(tokenizer):
    batch = tokenizer.encode_texts(["hello world", "a b c d e"], truncate=False)
    assert batch.token_counts.tolist() == [4, 7]
    assert batch.input_ids[0, 0] == 101 and batch.input_ids[0, 3] == 102 and batch.attention_mask[0].sum() == 4
    assert batch.input_ids.shape == (2, 7) and batch.input_ids[0, 4:].tolist() == [0, 0, 0]


def test_token_ids_are_the_model_input_verbatim(tokenizer):
    from_text = tokenizer.encode_texts(["hello world"], truncate=False)
    assert from_text.input_ids[0].tolist() == [101, 7592, 2088, 102]  # [CLS] hello world [SEP]
    from_ids = tokenizer.encode_token_ids([[101, 7592, 2088, 102]], truncate=False)  # the ids of tokenizer(text)
    np.testing.assert_array_equal(from_text.input_ids, from_ids.input_ids)
    bare = tokenizer.encode_token_ids([[7592, 2088]], truncate=False)  # nothing is added around them
    assert bare.input_ids[0].tolist() == [7592, 2088] and bare.token_counts.tolist() == [2]


def test_too_long_names_limit_and_count_unless_truncating(tokenizer):
    with pytest.raises(ClientError) as err:
        tokenizer.encode_texts(["ok", "one two three four five six seven eight nine ten eleven twelve thirteen"
                                " fourteen fifteen"], truncate=False)
    assert err.value.param == "input" and "input[1] has 17 tokens" in err.value.message and "16" in err.value.message
    batch = tokenizer.encode_texts(["word " * 40], truncate=True)
    assert batch.token_counts.tolist() == [16] and batch.input_ids[0, -1] == 102
    with pytest.raises(ClientError, match="has 20 tokens"):
        tokenizer.encode_token_ids([[2000] * 20], truncate=False)
    cut = tokenizer.encode_token_ids([list(range(2000, 2020))], truncate=True)
    assert cut.token_counts.tolist() == [16] and cut.input_ids[0].tolist() == list(range(2000, 2016))


def test_token_ids_outside_vocabulary(tokenizer):
    with pytest.raises(ClientError, match="token id 30522"):
        tokenizer.encode_token_ids([[1, 2], [30522]], truncate=False)


def test_request_wire_form(tokenizer):
    assert unpad_token_ids(np.array([[5, 6, -1], [7, -1, -1], [8, 9, 10]])) == [[5, 6], [7], [8, 9, 10]]
    empty = np.zeros((0, 0), dtype=np.int64)
    assert tokenize_request(tokenizer, ["hi"], empty, False).token_counts.tolist() == [3]
    with pytest.raises(ClientError, match="empty"):
        tokenize_request(tokenizer, [], empty, False)
    with pytest.raises(ClientError, match="not both"):
        tokenize_request(tokenizer, ["hi"], np.array([[5]]), False)


def test_params_round_trip():
    encoder = EncoderParams(PoolingSpec(PoolingMode.CLS, False), OrtOptions(2, True), 4096, "model.plan")
    assert EncoderParams.from_parameters(encoder.to_parameters()) == encoder
    assert TokenizerParams.from_parameters(TokenizerParams(512).to_parameters()) == TokenizerParams(512)
    assert OrtOptions(0).resolved_threads() >= 1
