"""adapter.embeddings.protocol: input shapes, model checks, wire form to Triton, dimensions, base64."""
from __future__ import annotations

import base64

import numpy as np
import pytest

from adapter.embeddings.protocol import (EmbeddingModelInfo, EmbeddingRequest, check_against_model,
                                         embedding_response, parse_input, shorten, triton_inputs)
from adapter.errors import OpenAIError

INFO = EmbeddingModelInfo(embedding_size=8, vocab_size=100, normalized=True)


@pytest.mark.parametrize("raw, texts, ids", [("hi", ["hi"], []), (["a", "b"], ["a", "b"], []),
                                             ([1, 2], [], [[1, 2]]), ([[1], [2, 3]], [], [[1], [2, 3]])])
def test_the_four_openai_input_shapes(raw, texts, ids):
    parsed = parse_input(raw)
    assert (parsed.texts, parsed.token_ids) == (texts, ids)


@pytest.mark.parametrize("raw", ["", [], [""], [[]], [True], [1, "a"], [[1], "a"], [[1.0]], {"x": 1}, None, "\ud800",
                                 ["x"] * 2049, [[1]] * 2049])
def test_bad_inputs_name_input(raw):
    with pytest.raises(OpenAIError) as err:
        parse_input(raw)
    assert err.value.status == 400 and err.value.param == "input"


def test_model_checks():
    with pytest.raises(OpenAIError, match="token id 100") as err:
        check_against_model(parse_input([[1, 100]]), None, INFO)
    assert err.value.param == "input"
    with pytest.raises(OpenAIError, match="larger than this model's embedding size") as err:
        check_against_model(parse_input("x"), 9, INFO)
    assert err.value.param == "dimensions"
    check_against_model(parse_input([[0, 99]]), 8, INFO)


def test_triton_inputs_pad_token_ids_with_minus_one():
    tensors = triton_inputs(parse_input([[5, 6, 7], [8]]), truncate=True)
    np.testing.assert_array_equal(tensors["TOKEN_IDS"], [[5, 6, 7], [8, -1, -1]])
    assert tensors["TEXT"].shape == (0,) and tensors["TRUNCATE"].tolist() == [True]
    texts = triton_inputs(parse_input(["ä"]), truncate=False)
    assert texts["TEXT"].tolist() == ["ä".encode()] and texts["TOKEN_IDS"].shape == (0, 0)


def test_shorten_renormalizes_only_normalized_models():
    v = np.array([[3.0, 4.0, 12.0]], dtype=np.float32)
    np.testing.assert_allclose(shorten(v, 2, True), [[0.6, 0.8]])
    np.testing.assert_allclose(shorten(v, 2, False), [[3.0, 4.0]])
    assert shorten(v, None, True) is v


def test_response_and_base64_little_endian_float32():
    vectors = np.array([[0.25, -1.5]], dtype=np.float32)
    body = embedding_response(vectors, np.array([7]), "m", "base64")
    assert body["usage"] == {"prompt_tokens": 7, "total_tokens": 7} and body["object"] == "list"
    raw = base64.b64decode(body["data"][0]["embedding"])
    assert raw == np.array([0.25, -1.5], dtype="<f4").tobytes()
    assert body["data"][0]["index"] == 0 and body["data"][0]["object"] == "embedding"


def test_request_defaults_and_extension():
    req = EmbeddingRequest(model="m", input="x", user="u", something_new=1)
    assert (req.encoding_format, req.dimensions, req.truncate) == ("float", None, False)
