"""Schemathesis against OpenAI's spec, trimmed to the routes this adapter serves: no 5xx, every 4xx an envelope.

Positive and negative cases (schemathesis' defaults). Generation length is capped in positive cases so the run
tests validation and error handling, not the CPU's decode speed; FUZZ_EXAMPLES bounds examples per operation.
"""
from __future__ import annotations

import os
import zlib
from collections import Counter

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.integration.hardening_support import CHAT_MODEL, EMBEDDING_MODEL, IMAGE_MODEL
from tests.openapi_subset import served_operations, spec_or_skip, trimmed_spec

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
_GENERATING = ("/chat/completions", "/completions")
# Random model names would stop every case at 404 model_not_found: send most cases to the served model.
_SERVED = {"/chat/completions": CHAT_MODEL, "/completions": CHAT_MODEL, "/embeddings": EMBEDDING_MODEL,
           "/images/generations": IMAGE_MODEL}


@pytest.fixture(scope="module")
def fuzz_adapter(start_adapter):
    # Tight limits keep accepted work small on this CPU (and exercise the limit errors' envelopes).
    return start_adapter(env={"MAX_N": "2", "MAX_TOKENS_LIMIT": "32", "MAX_IMAGES": "2", "ACCESS_LOG": "false"})


@pytest.fixture(scope="module")
def openai_spec():
    return spec_or_skip()  # before any server starts: a bare clone skips at once


@pytest.fixture(scope="module")
def fuzz_schema(openai_spec, fuzz_adapter):
    adapter = fuzz_adapter
    served = served_operations(httpx.get(f"{adapter.url}/openapi.json").json())
    spec = trimmed_spec(openai_spec, served, adapter.base_url)
    assert {("/models", "get"), ("/models/{}", "get")} <= served
    schema = schemathesis.openapi.from_dict(spec)
    schema.config.update(base_url=adapter.base_url)
    return schema


def cap_work(case) -> None:
    """Keep accepted generation requests short (the tiny models decode on this CPU)."""
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("model"), str) and case.path in _SERVED:
        if zlib.crc32(repr(sorted(body)).encode()) % 8:  # ~1 in 8 keeps its generated (unknown) name
            body["model"] = _SERVED[case.path]
    if isinstance(body, dict) and case.path in _GENERATING:
        if not isinstance(body.get("max_tokens"), int) and not isinstance(body.get("max_completion_tokens"), int):
            body["max_tokens"] = 4
        body.pop("stream", None)  # SSE bodies are not JSON; streaming is covered by its own tests
    if isinstance(body, dict) and case.path == "/images/generations":
        body.setdefault("size", "64x64")  # the tiny model's smallest; other sizes get the 400 listing them


def assert_envelope(response) -> None:
    error = response.json().get("error")
    assert isinstance(error, dict), response.text
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"] and isinstance(error["type"], str)


def check_case(case, seen: Counter) -> None:
    cap_work(case)
    response = case.call(timeout=60)
    seen[(case.path, response.status_code)] += 1
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text}"
    if 400 <= response.status_code < 500:
        assert_envelope(response)


def test_no_server_errors_and_openai_error_envelopes(fuzz_schema):
    # Hypothesis driven directly (schemathesis' pytest plugin does not run under this pytest version).
    operations = [result.ok() for result in fuzz_schema.get_all_operations()]
    assert operations
    seen: Counter = Counter()
    for operation in operations:
        cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))

        @given(case=cases)
        @settings(max_examples=EXAMPLES, deadline=None, phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case) -> None:
            check_case(case, seen)

        fuzz()
    print("fuzz (path, status) -> calls:", dict(sorted(seen.items())))
    assert sum(seen.values()) >= len(operations) * EXAMPLES // 2
