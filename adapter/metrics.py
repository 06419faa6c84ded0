"""Prometheus metrics of the adapter (names in the style of vLLM's `vllm:*`, prefixed `openai_adapter:`).

Routers call the small record_* functions; the HTTP middleware records request counts and latency.
"""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from adapter import request_context

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_TOKEN_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 1, 2.5, 5)

requests_total = Counter("openai_adapter:requests_total", "HTTP requests", ["route", "model", "status"])
request_latency = Histogram("openai_adapter:e2e_request_latency_seconds", "End-to-end request latency",
                            ["route", "model"], buckets=_LATENCY_BUCKETS)
time_to_first_token = Histogram("openai_adapter:time_to_first_token_seconds", "Time to first token", ["model"],
                                buckets=_TOKEN_BUCKETS + (10, 30))
inter_token_latency = Histogram("openai_adapter:inter_token_latency_seconds", "Time between streamed tokens",
                                ["model"], buckets=_TOKEN_BUCKETS)
prompt_tokens_total = Counter("openai_adapter:prompt_tokens_total", "Prompt tokens processed", ["model"])
generation_tokens_total = Counter("openai_adapter:generation_tokens_total", "Tokens generated", ["model"])
requests_in_flight = Gauge("openai_adapter:num_requests_running", "Requests in flight in the adapter", ["model"],
                           multiprocess_mode="livesum")  # summed over live workers (ADAPTER_WORKERS > 1)
requests_rejected_total = Counter("openai_adapter:requests_rejected_total",
                                  "Requests refused before reaching Triton", ["model", "reason"])


def token_timers(model: str) -> tuple[Histogram, Histogram]:
    """(time to first token, inter-token latency) of a model, labelled once per generation, not per token."""
    return time_to_first_token.labels(model), inter_token_latency.labels(model)


def record_tokens(model: str, prompt: int, generated: int = 0) -> None:
    prompt_tokens_total.labels(model).inc(prompt)
    generation_tokens_total.labels(model).inc(generated)
    request_context.add_tokens(prompt, generated)  # for the request's access-log line


def record_request(route: str, model: str, status: int, seconds: float) -> None:
    requests_total.labels(route, model, str(status)).inc()
    request_latency.labels(route, model).observe(seconds)


def record_rejected(model: str, reason: str) -> None:
    requests_rejected_total.labels(model, reason).inc()
