"""The generator model itself (no adapter): greedy == Hugging Face generate under continuous batching,
seeded sampling is reproducible, the stream contract holds, cancelled streams free their slots."""
from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest

from adapter.errors import OpenAIError
from adapter.triton_client import TritonClient
from builders.llm import DEMO_ID
from builders.llm.tiny import TinySpec, make_tiny_llama
from runtime.llm.detokenizer import detokenize
from runtime.llm.tokenizer import ChatTokenizer

pytestmark = pytest.mark.integration

MODEL = DEMO_ID
PROMPTS = ["Hi", "The model server sends a long answer to every question, however large the batch is today.",
           "café 日本語 🙂", "One two three four five six"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The demo checkpoint again, from the same seed (also proves the maker is deterministic)."""
    return make_tiny_llama(tmp_path_factory.mktemp("tiny-llama-3"), TinySpec())


async def collect(client: TritonClient, body: dict, stop_after: int | None = None) -> list[dict]:
    inputs = {"request": np.array([json.dumps(body)], dtype=np.object_)}
    responses = []
    async for out in client.stream(MODEL, inputs):
        responses.append(json.loads(out["response"].reshape(-1)[0]))
        if stop_after is not None and len(responses) >= stop_after:
            break
    return responses


def texts(responses: list[dict]) -> dict[int, tuple[str, str | None]]:
    out: dict[int, list] = {}
    for r in responses:
        for c in r["choices"]:
            text, reason = out.get(c["index"], ("", None))
            assert reason is None, "a choice ended twice"
            out[c["index"]] = (text + c["text"], c["finish_reason"])
    return out


def run(coro_factory, triton):
    async def main():
        client = TritonClient(triton.grpc_url, 120)
        try:
            return await coro_factory(client)
        finally:
            await client.close()
    return asyncio.run(main())


def test_greedy_matches_hf_generate_under_concurrency(triton, checkpoint):
    import torch
    from transformers import AutoModelForCausalLM

    tok = ChatTokenizer(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    max_new = [24, 9, 31, 17]
    expected = []
    for prompt, n in zip(PROMPTS, max_new):
        text = tok.hf.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                          add_generation_prompt=True)
        ids = tok.hf.encode(text, add_special_tokens=False)
        out = model.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False,
                             eos_token_id=sorted(tok.stop_ids), pad_token_id=0)[0, len(ids):].tolist()
        finish = "stop" if out[-1] in tok.stop_ids else "length"
        expected.append((detokenize(out, tok.token_bytes, tok.special_ids), finish, len(ids), len(out)))

    async def requests(client):
        bodies = [{"messages": [{"role": "user", "content": p}], "sampling": {"temperature": 0, "max_tokens": n}}
                  for p, n in zip(PROMPTS, max_new)]
        return await asyncio.gather(*(collect(client, b) for b in bodies))

    for responses, (text, finish, prompt_tokens, completion_tokens) in zip(run(requests, triton), expected):
        assert texts(responses) == {0: (text, finish)}
        usage = dict(responses[-1]["usage"])
        cached = usage.pop("cached_tokens")  # a shared template prefix may come from the prefix cache
        assert usage == {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}
        assert 0 <= cached < prompt_tokens and cached % 16 == 0


def test_same_seed_same_output_and_n_choices(triton):
    body = {"prompt": "Hello world", "sampling": {"temperature": 1.0, "seed": 1234, "n": 3, "max_tokens": 20}}
    noise = {"prompt": "noise " * 7, "sampling": {"temperature": 1.0, "max_tokens": 25}}

    async def requests(client):
        return await asyncio.gather(collect(client, body), collect(client, noise), collect(client, noise),
                                    collect(client, body))

    first, _, _, again = run(requests, triton)
    a, b = texts(first), texts(again)
    assert a == b
    assert sorted(a) == [0, 1, 2]
    assert len({t for t, _ in a.values()}) == 3, "choices of one request should differ"
    assert 3 <= first[-1]["usage"]["completion_tokens"] <= 60


def test_errors_are_client_errors(triton):
    async def too_long(client):
        return await collect(client, {"prompt_token_ids": [5] * 2048, "sampling": {}})

    with pytest.raises(OpenAIError) as err:
        run(too_long, triton)
    assert err.value.status == 400 and "2048" in err.value.message

    async def bad_bias(client):
        return await collect(client, {"prompt": "x", "sampling": {"logit_bias": {"999999": 5}}})

    with pytest.raises(OpenAIError) as err:
        run(bad_bias, triton)
    assert err.value.status == 400 and err.value.param == "logit_bias"


def test_cancelled_streams_free_their_slots(triton):
    """Fill every slot with endless requests, walk away from all of them, then ask for every slot again."""
    endless = {"prompt": "Go on", "sampling": {"temperature": 0, "ignore_eos": True}}  # max_tokens: rest of context
    short = {"prompt": "Then", "sampling": {"temperature": 0, "max_tokens": 8, "ignore_eos": True}}

    async def requests(client):
        await asyncio.gather(*(collect(client, endless, stop_after=2) for _ in range(32)))
        start = time.monotonic()
        done = await asyncio.wait_for(asyncio.gather(*(collect(client, short) for _ in range(32))), timeout=60)
        return done, time.monotonic() - start

    responses, elapsed = run(requests, triton)
    for r in responses:
        assert texts(r)[0][1] == "length" and r[-1]["usage"]["completion_tokens"] == 8
    # an endless request still holding a slot would make one short request wait for ~2000 more tokens
    assert elapsed < 3.0, f"32 short requests took {elapsed:.1f}s: cancelled requests still hold slots"


def test_finished_streams_end_cleanly_on_the_connection(triton):
    """After its final response a stream is left to end on its own (TritonClient.finishing_streams): none stays open on
    the connection and none is reset (a reset after the final response races Triton's stream teardown)."""
    short = {"prompt": "Then", "sampling": {"temperature": 0, "max_tokens": 4, "ignore_eos": True}}

    async def requests(client):
        done = await asyncio.gather(*(collect(client, short) for _ in range(16)))
        deadline = time.monotonic() + 5
        while client.finishing_streams and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return done, client.finishing_streams, *client.connection_streams()

    done, finishing, still_open, reset = run(requests, triton)
    assert all(r[-1]["usage"]["completion_tokens"] == 4 for r in done)
    assert (finishing, still_open, reset) == (0, 0, 0)


def test_stop_string_across_token_boundary_and_forced_token(triton, checkpoint):
    tok = ChatTokenizer(checkpoint)
    base = {"prompt": "The model", "sampling": {"temperature": 0, "max_tokens": 12, "ignore_eos": True,
                                                 "logprobs": True}}

    async def plain(client):
        return await collect(client, base)

    responses = run(plain, triton)
    pieces = [bytes(e["bytes"]) for r in responses for c in r["choices"] for e in c["logprobs"]["content"]]
    text = texts(responses)[0][0]
    # the last character of one token + the first of the next, found in no single token: any match spans two
    stops = [(a[-1:] + b[:1]).decode() for a, b in zip(pieces, pieces[1:]) if a.isascii() and b.isascii() and a and b]
    stop = next(s for s in stops if not any(s in p.decode("utf-8", "replace") for p in pieces))
    cut = text[:text.index(stop)]

    async def stopped(client):
        return await collect(client, {**base, "sampling": {**base["sampling"], "stop": [stop, "never"]}})

    assert texts(run(stopped, triton)) == {0: (cut, "stop")}

    forced = 300

    async def biased(client):
        return await collect(client, {"prompt": "x", "sampling": {"temperature": 1.0, "max_tokens": 6,
                                                                   "logit_bias": {str(forced): 100}}})

    assert texts(run(biased, triton)) == {0: (tok.token_text(forced) * 6, "length")}
