"""The playground page: served open at / and /playground while the API stays locked; model-card extensions."""
from __future__ import annotations

from fastapi.testclient import TestClient

from adapter.app import create_app
from adapter.middleware.auth import is_exempt
from adapter.model_registry import ServedModel
from adapter.models.protocol import model_card
from adapter.settings import Settings
from runtime.contract import Task


def test_page_is_open_and_the_root_exemption_covers_nothing_else():
    with TestClient(create_app(Settings(triton_grpc_url="127.0.0.1:1", api_keys="sk-k"))) as client:
        for path in ("/", "/playground"):
            page = client.get(path)
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            assert "triton-openai playground" in page.text
        for path in ("/v1/models", "/v1/chat/completions", "/anything", "/v1/"):
            assert client.get(path).status_code == 401, path


def test_root_exempts_only_itself():
    assert is_exempt("/", ("/",)) and is_exempt("/playground", ("/playground",))
    assert not is_exempt("/v1/models", ("/",)) and not is_exempt("/x", ("/", "/health"))


def test_card_keeps_openai_fields_and_adds_task_and_sizes():
    image = ServedModel("sd", Task.IMAGE_GENERATION, 1, parameters={"sizes": "64x64,128x64", "max_steps": "8"})
    assert model_card(image) == {"id": "sd", "object": "model", "created": 1, "owned_by": "triton-openai",
                            "task": "image-generation", "sizes": ["64x64", "128x64"]}
    assert "sizes" not in model_card(ServedModel("llm", Task.TEXT_GENERATION, 1))
