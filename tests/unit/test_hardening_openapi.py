"""The fuzz test's spec: OpenAI's OpenAPI document trimmed to our operations, with every $ref still resolvable."""
from __future__ import annotations

import json

import pytest

from tests.openapi_subset import SPEC, load_spec, served_operations, spec_or_skip, trimmed_spec

OURS = {"/v1/models": {"get": {}}, "/v1/models/{model_id}": {"get": {}}, "/v1/embeddings": {"post": {}},
        "/health": {"get": {}}}


@pytest.fixture(scope="module")
def spec():
    return spec_or_skip()


def test_served_operations_from_the_apps_openapi():
    assert served_operations({"paths": OURS}) == {("/models", "get"), ("/models/{}", "get"), ("/embeddings", "post")}


def test_trimmed_spec_keeps_only_our_operations_and_their_components(spec):
    trimmed = trimmed_spec(spec, served_operations({"paths": OURS}), "http://127.0.0.1:1/v1")
    assert {p: sorted(ops) for p, ops in trimmed["paths"].items()} == {
        "/models": ["get"], "/models/{model}": ["get"], "/embeddings": ["post"]}  # no DELETE /models/{model}
    assert trimmed["servers"] == [{"url": "http://127.0.0.1:1/v1"}]
    text = json.dumps(trimmed, default=str)
    assert "CreateEmbeddingRequest" in text and "CreateChatCompletionRequest" not in text
    for ref in set(_refs(trimmed)):  # closure: every reference resolves inside the trimmed document
        _, _, kind, name = ref.split("/", 3)
        assert name in trimmed["components"][kind], ref
    assert len(text) < len(json.dumps(spec, default=str)) / 20


def test_missing_shared_spec_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="shared"):
        load_spec(tmp_path / "nowhere.yaml")
    assert SPEC.name == "openai-openapi.yaml"


def test_missing_spec_skips_with_the_reason_unless_required(tmp_path, monkeypatch):
    monkeypatch.delenv("REQUIRE_OPENAI_SPEC", raising=False)
    with pytest.raises(pytest.skip.Exception, match="nowhere.yaml.*bare clone"):
        spec_or_skip(tmp_path / "nowhere.yaml")
    monkeypatch.setenv("REQUIRE_OPENAI_SPEC", "1")
    with pytest.raises(pytest.fail.Exception, match="nowhere.yaml"):
        spec_or_skip(tmp_path / "nowhere.yaml")


def _refs(node):
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)
