"""/v1/embeddings end to end: real tritonserver (ensemble: tokenizer -> ONNX Runtime encoder) + adapter, checked
against sentence-transformers on the same all-MiniLM-L6-v2 weights."""
from __future__ import annotations

import asyncio
import base64

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from builders.embeddings import DEMO_MODEL_ID, demo_checkpoint

MODEL = DEMO_MODEL_ID
MAX_TOKENS = 256  # the checkpoint's sentence_bert_config max_seq_length
NON_ASCII = ["Größenwahn über Äpfel", "日本語の文章を埋め込みます。", "Привет, мир!",
             "emoji 🙂🚀 mixed ✓", "مرحبا بالعالم", "naïve café résumé"]


def _words(n: int) -> str:
    vocab = ["alpha", "river", "quantum", "table", "green", "sings", "under", "bright", "stone", "seven"]
    return " ".join(vocab[(i * 7) % len(vocab)] for i in range(n))


@pytest.fixture(scope="module")
def st_model():
    from sentence_transformers import SentenceTransformer  # noqa: PLC0415  (heavy)

    return SentenceTransformer(str(demo_checkpoint()), device="cpu")


@pytest.fixture(scope="module")
def hf_tokenizer(st_model):
    return st_model.tokenizer


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def _post(http, **body):
    return http.post("/v1/embeddings", json={"model": MODEL, **body})


def _vectors(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [d["index"] for d in data] == list(range(len(data)))
    return np.array([d["embedding"] for d in data], dtype=np.float32)


def test_matches_sentence_transformers_on_varied_inputs(http, st_model, hf_tokenizer):
    near_limit = _words(400)  # truncated by the tokenizer below to exactly the limit
    ids = hf_tokenizer(near_limit, add_special_tokens=False)["input_ids"][:MAX_TOKENS - 2]
    near_limit = hf_tokenizer.decode(ids)
    texts = ["hi", "A short sentence.", near_limit, _words(120)] + NON_ASCII
    response = _post(http, input=texts)
    got = _vectors(response)
    assert len(hf_tokenizer(near_limit)["input_ids"]) >= MAX_TOKENS - 2
    assert _cosines(got, st_model.encode(texts)).min() >= 0.9999
    counts = [len(ids) for ids in hf_tokenizer(texts)["input_ids"]]
    assert response.json()["usage"] == {"prompt_tokens": sum(counts), "total_tokens": sum(counts)}


def test_batch_of_100_inputs(http, st_model):
    texts = [f"Sentence {i}: {_words(3 + i % 40)}" for i in range(100)]
    got = _vectors(_post(http, input=texts))
    assert got.shape == (100, 384)
    assert _cosines(got, st_model.encode(texts)).min() >= 0.9999


def test_token_ids_are_the_model_input_verbatim(http, hf_tokenizer):
    # vLLM / TEI semantics: the ids of tokenizer(text), special tokens included, give the text's vector
    texts = ["the quick brown fox", "jumps over the lazy dog"]
    ids = [hf_tokenizer(t)["input_ids"] for t in texts]
    from_text = _vectors(_post(http, input=texts))
    response = _post(http, input=ids)
    from_one_list = _vectors(_post(http, input=ids[0]))
    assert _cosines(from_text, _vectors(response)).min() >= 0.99999
    assert _cosines(from_text[:1], from_one_list).min() >= 0.99999
    count = sum(map(len, ids))
    assert response.json()["usage"] == {"prompt_tokens": count, "total_tokens": count}
    bare = [hf_tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]  # no [CLS]/[SEP] is added
    assert _cosines(from_text, _vectors(_post(http, input=bare))).max() < 0.999


def test_base64_decodes_to_the_float_result(http):
    texts = ["base64 check", "zweite Zeile ✓"]
    floats = _vectors(_post(http, input=texts))
    packed = _post(http, input=texts, encoding_format="base64").json()["data"]
    decoded = np.array([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in packed])
    np.testing.assert_array_equal(decoded, floats)


def test_openai_sdk_default_call(openai_client, st_model):
    # The SDK asks for base64 when no encoding_format is given and decodes it itself.
    result = openai_client.embeddings.create(model=MODEL, input=["hello from the SDK", "second"], user="u-1")
    got = np.array([d.embedding for d in result.data])
    assert result.object == "list" and result.model == MODEL and result.usage.prompt_tokens > 0
    assert _cosines(got, st_model.encode(["hello from the SDK", "second"])).min() >= 0.9999


def test_langchain_openai_embeddings(adapter, st_model):
    from langchain_openai import OpenAIEmbeddings  # noqa: PLC0415

    emb = OpenAIEmbeddings(model=MODEL, base_url=adapter.base_url, api_key="unused",
                           check_embedding_ctx_length=False, max_retries=0)
    docs = ["LangChain document one", "document two"]
    got = np.array(emb.embed_documents(docs) + [emb.embed_query("a query")])
    assert _cosines(got, st_model.encode(docs + ["a query"])).min() >= 0.9999


def test_dimensions_truncate_then_renormalize(http):
    full = _vectors(_post(http, input=["matryoshka"]))[0]
    short = _vectors(_post(http, input=["matryoshka"], dimensions=64))[0]
    assert short.shape == (64,)
    np.testing.assert_allclose(short, full[:64] / np.linalg.norm(full[:64]), atol=1e-6)


def test_truncate_extension_embeds_the_first_tokens(http, st_model):
    long_text = _words(600)
    response = _post(http, input=[long_text], truncate=True)
    # sentence-transformers truncates to max_seq_length the same way
    assert _cosines(_vectors(response), st_model.encode([long_text])).min() >= 0.9999
    assert response.json()["usage"]["prompt_tokens"] == MAX_TOKENS


def _encoder_stats(triton) -> tuple[int, int]:
    """(requests that reached the encoder, engine executions) from Triton's statistics API."""
    client = grpcclient.InferenceServerClient(triton.grpc_url)
    stats = client.get_inference_statistics(f"{MODEL}__encoder", as_json=True)["model_stats"][0]
    client.close()
    return int(stats["inference_stats"]["success"].get("count", 0)), int(stats.get("execution_count", 0))


async def test_concurrent_clients_get_their_own_vectors_and_requests_are_merged(async_openai_client, triton,
                                                                                  st_model):
    groups = [[f"client {c} item {i}: {_words(2 + (c * 5 + i) % 30)}" for i in range(6)] for c in range(12)]
    expected = [st_model.encode(g) for g in groups]
    before = _encoder_stats(triton)
    results = await asyncio.gather(*(async_openai_client.embeddings.create(model=MODEL, input=g) for g in groups))
    after = _encoder_stats(triton)
    for want, result in zip(expected, results):
        assert [d.index for d in result.data] == list(range(len(want)))
        assert _cosines(np.array([d.embedding for d in result.data]), want).min() >= 0.9999
    requests, executions = after[0] - before[0], after[1] - before[1]
    assert requests == len(groups)
    assert executions < requests, f"dynamic batcher merged nothing: {executions} executions for {requests}"


def _error(response, param: str | None) -> dict:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param, error
    return error


@pytest.mark.parametrize("value", ["", [], [""], ["ok", ""], [[]], [1, "a"], [[1], "a"], {"a": 1}, True, 3,
                                   [1.5], [[1, 2], [3.0]], None])
def test_bad_input_is_a_400_naming_input(http, value):
    _error(_post(http, input=value), "input")


def test_more_than_2048_inputs(http):
    assert "2048" in _error(_post(http, input=["x"] * 2049), "input")["message"]


@pytest.mark.parametrize("ids", [[[1, 2, 30522]], [5, -1], [[7, 99999999]]])
def test_token_ids_outside_vocabulary(http, ids):
    assert "vocabulary" in _error(_post(http, input=ids), "input")["message"]


def test_too_long_names_the_limit_and_the_count(http, hf_tokenizer):
    text = _words(300)
    count = len(hf_tokenizer(text)["input_ids"])
    message = _error(_post(http, input=["fine", text]), "input")["message"]
    assert str(MAX_TOKENS) in message and str(count) in message and "input[1]" in message
    long_ids = [[2000] * 300]
    assert "has 300 tokens" in _error(_post(http, input=long_ids), "input")["message"]


@pytest.mark.parametrize("body, param", [({"dimensions": 385}, "dimensions"), ({"dimensions": 0}, "dimensions"),
                                         ({"encoding_format": "hex"}, "encoding_format")])
def test_bad_options(http, body, param):
    _error(_post(http, input="x", **body), param)


def test_unknown_model_is_404(http):
    response = http.post("/v1/embeddings", json={"model": "no-such-model", "input": "x"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "model_not_found"
