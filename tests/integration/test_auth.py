"""API keys: Bearer on /v1/*, 401 envelopes, constant-time check, open health/metrics, keys never logged."""
from __future__ import annotations

import httpx
import openai
import pytest

from tests.integration.hardening_support import assert_envelope

KEYS = ("sk-test-alpha-0123456789", "sk-test-beta-9876543210")
FILE_KEY = "sk-test-from-file-5555"
WRONG = "sk-wrong-key-that-must-never-be-logged"


@pytest.fixture(scope="module")
def secured(start_adapter, tmp_path_factory):
    keys_file = tmp_path_factory.mktemp("auth") / "keys"
    keys_file.write_text(f"# rotated 2026-11\n{FILE_KEY}\n")
    return start_adapter(env={"API_KEYS": ",".join(KEYS), "API_KEYS_FILE": str(keys_file)})


def test_missing_and_wrong_keys_are_401_envelopes(secured):
    missing = assert_envelope(httpx.get(f"{secured.base_url}/models"), 401, "invalid_api_key")
    assert "Authorization" in missing["message"]
    wrong = httpx.get(f"{secured.base_url}/models", headers={"Authorization": f"Bearer {WRONG}"})
    assert WRONG not in assert_envelope(wrong, 401, "invalid_api_key")["message"]
    assert wrong.headers["www-authenticate"] == "Bearer"
    basic = httpx.get(f"{secured.base_url}/models", auth=("user", KEYS[0]))
    assert_envelope(basic, 401, "invalid_api_key")
    # Auth runs before routing and body checks: unknown routes and big bodies are 401 too.
    assert_envelope(httpx.post(f"{secured.base_url}/chat/completions", json={"model": "x"}), 401, "invalid_api_key")


def test_openai_client_with_each_key(secured):
    for key in (*KEYS, FILE_KEY):
        client = openai.OpenAI(base_url=secured.base_url, api_key=key, max_retries=0)
        assert client.models.list().object == "list"
    with pytest.raises(openai.AuthenticationError) as info:
        openai.OpenAI(base_url=secured.base_url, api_key=WRONG, max_retries=0).models.list()
    assert info.value.code == "invalid_api_key"


def test_health_and_metrics_stay_open(secured):
    assert httpx.get(f"{secured.url}/health").status_code == 200
    assert httpx.get(f"{secured.url}/health/ready").status_code == 200
    assert httpx.get(f"{secured.url}/metrics").status_code == 200


def test_exempt_paths_are_configurable(start_adapter):
    locked = start_adapter(env={"API_KEYS": KEYS[0], "AUTH_EXEMPT_PATHS": "/health"})
    assert_envelope(httpx.get(f"{locked.url}/metrics"), 401, "invalid_api_key")
    assert httpx.get(f"{locked.url}/metrics", headers={"Authorization": f"Bearer {KEYS[0]}"}).status_code == 200


def test_keys_never_logged(secured):
    httpx.get(f"{secured.base_url}/models", headers={"Authorization": f"Bearer {WRONG}"})
    httpx.get(f"{secured.base_url}/models", headers={"Authorization": f"Bearer {KEYS[0]}"})
    log = secured.log_file.read_text()
    assert '"status": 401' in log and '"status": 200' in log  # the requests were logged...
    for secret in (*KEYS, FILE_KEY, WRONG):
        assert secret not in log  # ...without any key


def test_open_adapter_warns_at_startup(adapter):
    assert "no API keys configured" in adapter.log_file.read_text()
    assert httpx.get(f"{adapter.base_url}/models").status_code == 200
