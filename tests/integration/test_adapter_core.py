"""Adapter core against a real tritonserver: model listing, health, error envelopes, Triton down."""
from __future__ import annotations

import time

import httpx
import openai
import pytest

from launcher.process import free_port
from launcher.stack import Stack
from tests.fixtures.toy_repository import HEALTHY, add_model


@pytest.fixture(scope="module")
def toy_stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    repo = root / "repo"
    add_model(repo, "toy-embedder", HEALTHY, task="embeddings")
    add_model(repo, "toy-embedder__tokenizer", HEALTHY)  # an internal step: never listed
    with Stack(repo, root) as stack:
        yield stack.adapter


def _assert_envelope(resp: httpx.Response, status: int, code: str | None) -> dict:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    assert error["code"] == code
    return error


def test_models_lists_only_client_facing_models(toy_stack):
    client = openai.OpenAI(base_url=toy_stack.base_url, api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list()] == ["toy-embedder"]
    card = client.models.retrieve("toy-embedder")
    assert card.object == "model" and card.owned_by and card.created > 0


def test_internal_and_unknown_models_are_404(toy_stack):
    for name in ("toy-embedder__tokenizer", "no-such-model"):
        error = _assert_envelope(httpx.get(f"{toy_stack.base_url}/models/{name}"), 404, "model_not_found")
        assert error["param"] == "model"


def test_unknown_route_is_404_envelope(toy_stack):
    _assert_envelope(httpx.post(f"{toy_stack.base_url}/no/such/route", json={}), 404, "unknown_url")


def test_health_and_readiness(toy_stack):
    assert httpx.get(f"{toy_stack.url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{toy_stack.url}/health/ready").status_code == 200


def test_triton_unreachable_is_503_quickly(start_adapter):
    dead = start_adapter(triton_grpc_url=f"127.0.0.1:{free_port()}", ready_path="/health")
    assert httpx.get(f"{dead.url}/health").status_code == 200
    assert httpx.get(f"{dead.url}/health/ready").status_code == 503
    start = time.monotonic()
    _assert_envelope(httpx.get(f"{dead.base_url}/models", timeout=30), 503, "service_unavailable")
    assert time.monotonic() - start < 15


def test_session_stack_lists_the_demo_models(openai_client, model_repository):
    expected = sorted(p.parent.name for p in model_repository.glob("*/config.pbtxt")
                      if "openai_task" in p.read_text())
    assert expected, "the demo repository serves no client-facing model"
    assert sorted(m.id for m in openai_client.models.list()) == expected
