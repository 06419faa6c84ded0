"""The app factory's error handlers and request base, with no Triton behind it."""
from __future__ import annotations

from fastapi import APIRouter
from fastapi.testclient import TestClient

from adapter.app import create_app
from adapter.protocol import OpenAIRequest
from adapter.settings import Settings


class EchoRequest(OpenAIRequest):
    model: str
    count: int = 1


def _client() -> TestClient:
    app = create_app(Settings(triton_grpc_url="127.0.0.1:1"))
    router = APIRouter()

    @router.post("/v1/echo")
    async def echo(body: EchoRequest) -> dict:
        return body.model_dump()

    app.include_router(router)
    return TestClient(app)


def test_unknown_fields_are_accepted_and_dropped():
    resp = _client().post("/v1/echo", json={"model": "m", "count": 2, "vendor_extra": {"x": 1}})
    assert resp.status_code == 200
    assert resp.json() == {"model": "m", "count": 2}


def test_invalid_body_is_400_envelope_with_param():
    with _client() as client:
        missing = client.post("/v1/echo", json={"count": 2}).json()["error"]
        wrong = client.post("/v1/echo", json={"model": "m", "count": "many"})
        broken = client.post("/v1/echo", content=b"{not json", headers={"content-type": "application/json"})
        empty = client.post("/v1/echo", content=b"", headers={"content-type": "application/json"})
    assert missing["param"] == "model" and "Missing required parameter" in missing["message"]
    assert empty.status_code == 400 and empty.json()["error"]["param"] is None
    assert "no body" in empty.json()["error"]["message"] and "None" not in empty.json()["error"]["message"]
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "count"
    assert broken.status_code == 400 and broken.json()["error"]["type"] == "invalid_request_error"


def test_wrong_method_and_unknown_route():
    with _client() as client:
        assert client.get("/v1/nowhere").json()["error"]["code"] == "unknown_url"
        assert client.delete("/v1/models").status_code == 405


class PartsRequest(OpenAIRequest):
    content: str | list[EchoRequest]


def test_param_names_the_field_not_pydantic_type_tags():
    app = create_app(Settings(triton_grpc_url="127.0.0.1:1"))
    router = APIRouter()

    @router.post("/v1/parts")
    async def parts(body: PartsRequest) -> dict:
        return {}

    app.include_router(router)
    with TestClient(app) as client:
        error = client.post("/v1/parts", json={"content": 5}).json()["error"]
    assert error["param"] == "content"
