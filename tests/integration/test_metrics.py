"""GET /metrics (request counts, latency, TTFT, ITL, token counters) and the JSON access log with request ids."""
from __future__ import annotations

import json

import httpx

from tests.integration.hardening_support import CHAT_MODEL, EMBEDDING_MODEL, metric_value, sse_events, wait_for

ROUTE = "/v1/chat/completions"
SECRET_PROMPT = "pineapple-lighthouse-47 is my secret"


def counters(url: str) -> dict[str, float]:
    return {
        "ok": metric_value(url, "openai_adapter:requests_total", route=ROUTE, model=CHAT_MODEL, status="200"),
        "latency": metric_value(url, "openai_adapter:e2e_request_latency_seconds_count", route=ROUTE,
                                model=CHAT_MODEL),
        "ttft": metric_value(url, "openai_adapter:time_to_first_token_seconds_count", model=CHAT_MODEL),
        "itl": metric_value(url, "openai_adapter:inter_token_latency_seconds_count", model=CHAT_MODEL),
        "prompt": metric_value(url, "openai_adapter:prompt_tokens_total", model=CHAT_MODEL),
        "generated": metric_value(url, "openai_adapter:generation_tokens_total", model=CHAT_MODEL),
        "not_found": metric_value(url, "openai_adapter:requests_total", route=ROUTE, status="404"),
    }


def chat(adapter, stream: bool, request_id: str | None = None) -> tuple[httpx.Response, dict]:
    body = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": SECRET_PROMPT}], "max_tokens": 12,
            "ignore_eos": True, "stream": stream, "stream_options": {"include_usage": True} if stream else None}
    headers = {"x-request-id": request_id} if request_id else {}
    response = httpx.post(f"{adapter.base_url}/chat/completions", json=body, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    if stream:
        events = sse_events(response.text.splitlines())
        assert events[-1] == "[DONE]"
        return response, json.loads(events[-2])["usage"]
    return response, response.json()["usage"]


def quiet(adapter) -> None:
    """Exact deltas need the session adapter idle (earlier tests may leave abandoned work finishing)."""
    wait_for(lambda: metric_value(adapter.url, "openai_adapter:num_requests_running") == 0, 30, "an idle adapter")


def test_metrics_count_requests_latency_and_tokens(adapter):
    quiet(adapter)
    before = counters(adapter.url)
    _, streamed = chat(adapter, stream=True)
    _, plain = chat(adapter, stream=False)
    missing = httpx.post(f"{adapter.base_url}/chat/completions", json={"model": "nope", "messages": []})
    assert missing.status_code in (400, 404)
    after = counters(adapter.url)
    delta = {k: after[k] - before[k] for k in after}
    assert delta["ok"] == 2 and delta["latency"] == 2
    assert delta["ttft"] >= 1 and delta["itl"] >= streamed["completion_tokens"] - 1
    assert delta["prompt"] == streamed["prompt_tokens"] + plain["prompt_tokens"]
    assert delta["generated"] == streamed["completion_tokens"] + plain["completion_tokens"] == 24
    text = httpx.get(f"{adapter.url}/metrics").text
    assert "openai_adapter:num_requests_running" in text and "process_resident_memory_bytes" in text


def test_embeddings_requests_and_tokens_are_counted(adapter):
    labels = {"route": "/v1/embeddings", "model": EMBEDDING_MODEL, "status": "200"}
    quiet(adapter)
    before = (metric_value(adapter.url, "openai_adapter:requests_total", **labels),
              metric_value(adapter.url, "openai_adapter:prompt_tokens_total", model=EMBEDDING_MODEL))
    response = httpx.post(f"{adapter.base_url}/embeddings", timeout=60,
                          json={"model": EMBEDDING_MODEL, "input": ["one sentence", "and another one"]})
    assert response.status_code == 200, response.text
    after = (metric_value(adapter.url, "openai_adapter:requests_total", **labels),
             metric_value(adapter.url, "openai_adapter:prompt_tokens_total", model=EMBEDDING_MODEL))
    assert after[0] - before[0] == 1
    assert after[1] - before[1] == response.json()["usage"]["prompt_tokens"] > 0
    line = access_line(adapter, response.headers["x-request-id"])
    assert line["model"] == EMBEDDING_MODEL and line["prompt_tokens"] == response.json()["usage"]["prompt_tokens"]


def test_triton_metrics_stay_on_tritons_port(triton):
    text = httpx.get(f"http://127.0.0.1:{triton.metrics_port}/metrics", timeout=10).text
    assert "nv_inference_request_success" in text


def access_lines(adapter) -> list[dict]:
    return [json.loads(line) for line in adapter.log_file.read_text().splitlines() if line.startswith('{"ts"')]


def access_line(adapter, request_id: str) -> dict:
    """The request's log line: written once the last byte has gone out, so it can trail the client a little."""
    wait_for(lambda: any(line["request_id"] == request_id for line in access_lines(adapter)), 10,
             f"the access log line of {request_id}")
    [line] = [line for line in access_lines(adapter) if line["request_id"] == request_id]
    return line


def test_one_json_log_line_per_request_with_id_and_no_prompt(adapter):
    response, usage = chat(adapter, stream=False, request_id="hardening-test-42")
    assert response.headers["x-request-id"] == "hardening-test-42"
    generated, _ = chat(adapter, stream=True)
    new_id = generated.headers["x-request-id"]
    assert new_id.startswith("req-")
    mine = access_line(adapter, "hardening-test-42")
    assert mine | {"latency_ms": 0} == {
        "ts": mine["ts"], "event": "request", "request_id": "hardening-test-42", "method": "POST",
        "path": ROUTE, "route": ROUTE, "model": CHAT_MODEL, "status": 200, "latency_ms": 0, "stream": False,
        "prompt_tokens": usage["prompt_tokens"], "completion_tokens": usage["completion_tokens"]}
    assert access_line(adapter, new_id)["stream"] is True
    assert SECRET_PROMPT not in adapter.log_file.read_text()
