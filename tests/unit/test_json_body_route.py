"""JSONBodyRoute answers exactly as FastAPI's own route would, without FastAPI's per-request machinery."""
from __future__ import annotations

import json

import fastapi.routing
import pytest
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from adapter.errors import install_error_handlers
from adapter.llm.protocol import ChatCompletionRequest, CompletionRequest
from adapter.routers.json_body_route import JSONBodyRoute

J = "application/json"
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
COMPLETION = {"model": "m", "prompt": ["a", "b"], "max_tokens": 2}


def _app(route_class: type[fastapi.routing.APIRoute]) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    router = APIRouter(prefix="/v1", route_class=route_class)

    @router.post("/chat/completions")
    async def chat(body: ChatCompletionRequest, request: Request) -> Response:
        return JSONResponse({"validated": body.model_dump(mode="json"), "path": request.url.path})

    @router.post("/completions")
    async def completions(body: CompletionRequest, request: Request) -> Response:
        return JSONResponse({"validated": body.model_dump(mode="json"), "path": request.url.path})

    app.include_router(router)
    return app


def _cases() -> list[tuple[str, str | None, bytes]]:
    cases = []
    for path, good in (("/v1/chat/completions", CHAT), ("/v1/completions", COMPLETION)):
        raw = json.dumps(good)
        bodies = [raw, json.dumps({**good, "stream": True, "extra_field": 1}), "", "{bad json", "[]", "null", "1",
                  json.dumps({**good, "max_tokens": "x"}), json.dumps({"model": "m"}), json.dumps({**good, "n": 0}),
                  raw.replace("2}", "NaN}"), json.dumps({**good, "stop": [1]}), json.dumps({**good, "temperature": 9})]
        cases += [(path, J, b.encode()) for b in bodies] + [(path, J, b"\xff\xfe\xfa")]
        cases += [(path, ct, raw.encode()) for ct in (None, "text/plain", "application/vnd.api+json",
                                                      "application/json; charset=utf-8", "multipart/form-data")]
    return cases


@pytest.mark.parametrize("path,content_type,body", _cases())
def test_same_answer_as_fastapi(path, content_type, body):
    headers = {"content-type": content_type} if content_type else {}
    with TestClient(_app(fastapi.routing.APIRoute)) as plain, TestClient(_app(JSONBodyRoute)) as lean:
        expected = plain.post(path, content=body, headers=headers)
        got = lean.post(path, content=body, headers=headers)
    assert (got.status_code, got.json()) == (expected.status_code, expected.json())


def test_json_requests_skip_fastapis_dependency_solving(monkeypatch):
    calls = []
    solve = fastapi.routing.solve_dependencies

    async def counting(*args, **kwargs):
        calls.append(kwargs.get("request"))
        return await solve(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    with TestClient(_app(JSONBodyRoute)) as client:
        assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
        assert client.post("/v1/chat/completions", json={"model": "m"}).status_code == 400
        assert not calls
        plain_text = client.post("/v1/chat/completions", content=json.dumps(CHAT), headers={"content-type": "text/plain"})
    assert plain_text.status_code == 400 and len(calls) == 1  # another content type: FastAPI's own path


def test_other_methods_and_the_schema_are_fastapis():
    with TestClient(_app(fastapi.routing.APIRoute)) as plain, TestClient(_app(JSONBodyRoute)) as lean:
        for client in (plain, lean):
            assert client.get("/v1/chat/completions").status_code == 405
        assert lean.get("/openapi.json").json()["paths"] == plain.get("/openapi.json").json()["paths"]


def test_an_endpoint_of_another_shape_is_refused():
    router = APIRouter(route_class=JSONBodyRoute)
    with pytest.raises(TypeError, match="JSONBodyRoute endpoint"):
        @router.post("/x")
        async def x(body: ChatCompletionRequest) -> Response: ...
