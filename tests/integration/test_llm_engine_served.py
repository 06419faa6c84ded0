"""The LLM engine through the whole stack: int8 and int4 weight-only models serve like the fp32 one, and a prompt
that repeats a cached prefix reuses it (Triton's own /metrics counts the hit) with unchanged output."""
from __future__ import annotations

import re

import httpx
import pytest

from tests.integration.hardening_support import wait_for

MODEL = "tiny-llama-3"
QUANTIZED = ["tiny-llama-3-int8", "tiny-llama-3-int4"]
SYSTEM = " ".join(f"rule {i}: answer briefly and cite section {i * 7}." for i in range(12))  # ~130 tokens


def _chat(client, model: str, user: str, stream: bool = False, **extra) -> str:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
    kwargs = dict(model=model, messages=messages, max_tokens=24, temperature=0, stream=stream, **extra)
    if not stream:
        return client.chat.completions.create(**kwargs).choices[0].message.content
    return "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(**kwargs) if c.choices)


@pytest.mark.parametrize("model", QUANTIZED)
def test_weight_only_models_serve_streamed_and_not(openai_client, model):
    whole = openai_client.chat.completions.create(model=model, max_tokens=16, temperature=0, seed=1,
                                                  messages=[{"role": "user", "content": "Name a colour."}])
    assert whole.usage.completion_tokens >= 1 and whole.choices[0].finish_reason in ("stop", "length")
    assert _chat(openai_client, model, "Name a colour.", stream=True) == _chat(openai_client, model, "Name a colour.")


def _counter(triton, name: str, model: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{triton.metrics_port}/metrics", timeout=10).text
    match = re.search(rf'^{name}{{[^}}]*model="{re.escape(model)}"[^}}]*}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def test_a_repeated_prefix_is_reused_and_changes_nothing(openai_client, triton):
    before = _counter(triton, "llm_prefix_cache_reused_tokens_total", MODEL)
    first = _chat(openai_client, MODEL, "Which rule is first?")
    again = _chat(openai_client, MODEL, "Which rule is first?")          # the same prompt: all but its end cached
    other = _chat(openai_client, MODEL, "Which rule is last?", stream=True)  # the system prompt cached
    assert first == again
    wait_for(lambda: _counter(triton, "llm_prefix_cache_reused_tokens_total", MODEL) - before >= 2 * 128, 10,
             "Triton's prefix-cache counter to count two reuses of the ~130-token system prompt")
    assert _counter(triton, "llm_prefix_cache_hits_total", MODEL) >= 2
    assert other  # served normally on top of the reused prefix


def test_usage_reports_the_prompt_tokens_served_from_the_cache(openai_client):
    """OpenAI's usage.prompt_tokens_details.cached_tokens: the repeated ~130-token system prompt, whole blocks."""
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Which section is cited most?"}]
    kwargs = dict(model=MODEL, messages=messages, max_tokens=4, temperature=0)
    openai_client.chat.completions.create(**kwargs)
    again = openai_client.chat.completions.create(**kwargs).usage
    assert 128 <= again.prompt_tokens_details.cached_tokens < again.prompt_tokens
    assert again.prompt_tokens_details.cached_tokens % 16 == 0
    chunks = list(openai_client.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True}))
    streamed = chunks[-1].usage
    assert streamed.prompt_tokens == again.prompt_tokens
    assert streamed.prompt_tokens_details.cached_tokens >= 128
