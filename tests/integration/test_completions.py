"""/v1/completions on the real stack (tritonserver + adapter, tiny-llama-3) through the official openai client."""
from __future__ import annotations

import asyncio

import openai
import pytest

from tests.integration.llm_helpers import MODEL, ServedLlm, served_llm, stop_across_tokens

pytestmark = pytest.mark.integration

PROMPT = "The sea is"
GREEDY = {"model": MODEL, "temperature": 0}


@pytest.fixture(scope="module")
def llm(triton, model_repository) -> ServedLlm:
    return served_llm(triton.http_url, model_repository)


def streamed(client: openai.OpenAI, **kwargs) -> tuple[dict[int, list[str]], dict[int, str]]:
    deltas: dict[int, list[str]] = {}
    finish: dict[int, str] = {}
    for chunk in client.completions.create(stream=True, **kwargs):
        for c in chunk.choices:
            deltas.setdefault(c.index, []).append(c.text)
            if c.finish_reason:
                finish[c.index] = c.finish_reason
    return deltas, finish


def test_response_shape_usage_and_streaming_equality(openai_client):
    r = openai_client.completions.create(**GREEDY, prompt=PROMPT, max_tokens=16)
    assert r.id.startswith("cmpl-") and r.object == "text_completion" and r.model == MODEL
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    deltas, finish = streamed(openai_client, **GREEDY, prompt=PROMPT, max_tokens=16)
    assert "".join(deltas[0]) == r.choices[0].text and finish[0] == r.choices[0].finish_reason


def test_max_tokens_5_ends_with_length(openai_client):
    r = openai_client.completions.create(**GREEDY, prompt=PROMPT, max_tokens=5)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 5


def test_prompt_forms_fan_out(openai_client, llm):
    ids = llm.tokenizer.encode(PROMPT).ids  # with <|begin_of_text|>, as the generator tokenizes text
    single = openai_client.completions.create(**GREEDY, prompt=PROMPT, max_tokens=6).choices[0].text
    by_ids = openai_client.completions.create(**GREEDY, prompt=ids, max_tokens=6)
    assert by_ids.choices[0].text == single and by_ids.usage.prompt_tokens == len(ids)
    r = openai_client.completions.create(**GREEDY, prompt=[PROMPT, "Ships"], max_tokens=6)
    assert [c.index for c in r.choices] == [0, 1] and r.choices[0].text == single
    r = openai_client.completions.create(**GREEDY, prompt=[ids, ids[:1]], max_tokens=6, n=2)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    assert [c.text for c in r.choices[:2]] == [single, single]  # greedy: both choices of prompt 0 agree
    assert r.usage.prompt_tokens == len(ids) + 1


def test_echo(openai_client):
    r = openai_client.completions.create(**GREEDY, prompt=PROMPT, max_tokens=4)
    echoed = openai_client.completions.create(**GREEDY, prompt=PROMPT, max_tokens=4, echo=True)
    assert echoed.choices[0].text == PROMPT + r.choices[0].text
    deltas, _ = streamed(openai_client, **GREEDY, prompt=PROMPT, max_tokens=4, echo=True)
    assert "".join(deltas[0]) == echoed.choices[0].text


def test_legacy_logprobs_shape(openai_client):
    r = openai_client.completions.create(**GREEDY, prompt=PROMPT, max_tokens=4, logprobs=2)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 4
    assert "".join(lp.tokens) == r.choices[0].text
    assert lp.text_offset[0] == 0 and lp.text_offset == sorted(lp.text_offset)
    assert all(len(top) <= 2 and max(top.values()) >= lp.token_logprobs[i] - 1e-6
               for i, top in enumerate(lp.top_logprobs))


def test_stop_string_split_across_tokens_is_cut(openai_client):
    deltas, _ = streamed(openai_client, **GREEDY, prompt=PROMPT, max_tokens=40)
    found = stop_across_tokens(deltas[0])
    assert found, f"no usable stop string in the greedy output {deltas[0]!r}"
    stop, at = found
    r = openai_client.completions.create(**GREEDY, prompt=PROMPT, max_tokens=40, stop=stop)
    assert r.choices[0].text == "".join(deltas[0])[:at] and r.choices[0].finish_reason == "stop"


def test_include_usage(openai_client):
    chunks = list(openai_client.completions.create(**GREEDY, prompt=[PROMPT, "Ships"], max_tokens=3, stream=True,
                                                   stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 6


@pytest.mark.asyncio(loop_scope="session")  # the shared async client lives in the session loop
async def test_async_client(async_openai_client):
    rs = await asyncio.gather(*(async_openai_client.completions.create(**GREEDY, prompt=PROMPT, max_tokens=8)
                                for _ in range(3)))
    assert len({r.choices[0].text for r in rs}) == 1
    stream = await async_openai_client.completions.create(**GREEDY, prompt=PROMPT, max_tokens=8, stream=True)
    assert "".join([c.choices[0].text async for c in stream if c.choices]) == rs[0].choices[0].text


BAD = [
    ({"temperature": 2.1}, "temperature"), ({"top_p": 0}, "top_p"), ({"n": 0}, "n"),
    ({"stop": ["1", "2", "3", "4", "5"]}, "stop"), ({"presence_penalty": -3}, "presence_penalty"),
    ({"logit_bias": {"1": -101}}, "logit_bias"), ({"max_tokens": 0}, "max_tokens"), ({"logprobs": 6}, "logprobs"),
    ({"prompt": []}, "prompt"),
]


@pytest.mark.parametrize("change, param", BAD)
def test_bad_input_is_400(openai_client, change, param):
    with pytest.raises(openai.BadRequestError) as exc:
        openai_client.completions.create(**{**GREEDY, "prompt": PROMPT, **change})
    assert exc.value.status_code == 400 and exc.value.body["param"] == param


def test_limits_of_the_model_are_400(openai_client, llm):
    for change, param in [({"prompt": [1, llm.vocab_size]}, "prompt"),
                          ({"logit_bias": {str(llm.vocab_size + 5): 1}}, "logit_bias"),
                          ({"max_tokens": llm.max_model_len + 1}, "max_tokens")]:
        with pytest.raises(openai.BadRequestError) as exc:
            openai_client.completions.create(**{**GREEDY, "prompt": PROMPT, **change})
        assert exc.value.body["param"] == param
    with pytest.raises(openai.BadRequestError) as exc:  # prompt + max_tokens beyond the window (generator's check)
        openai_client.completions.create(**GREEDY, prompt=PROMPT, max_tokens=llm.max_model_len)
    assert str(llm.max_model_len) in exc.value.body["message"]
