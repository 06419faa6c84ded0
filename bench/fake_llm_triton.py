"""A fake of TritonClient.stream for the LLM generator, following the contract (runtime/llm/protocol.py): the
adapter alone under bench/adapter_cpu.py, and the adapter's unit tests.

Every choice "generates" WORDS one token at a time (choice i prefixes its tokens with f"{i}:" when n > 1), stops
with `length` at max_tokens, else with `stop` after the last word. Deltas of all n choices of a step travel in
one response, as the real generator may send them. The prompt "TOO LONG" fails like a caller error does.
"""
from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import orjson

from adapter.errors import invalid_request
from adapter.model_registry import ServedModel
from runtime.contract import TASK_PARAMETER, Task
from runtime.llm.families import FAMILY_PARAMETER
from runtime.llm.protocol import GeneratorConfig

WORDS = ["Hello", ",", " wor", "ld", "!", " é", "🙂"]
MODEL = "tiny-fake"
MAX_MODEL_LEN = 64
VOCAB_SIZE = 100


def served_model(family: str | None = None) -> ServedModel:
    """The fake generator's entry; family: its `model_family` parameter (none: the default family)."""
    parameters = {TASK_PARAMETER: Task.TEXT_GENERATION.value,
                  **GeneratorConfig(max_model_len=MAX_MODEL_LEN, vocab_size=VOCAB_SIZE).to_parameters()}
    if family:
        parameters[FAMILY_PARAMETER] = family
    return ServedModel(id=MODEL, task=Task.TEXT_GENERATION, created=0, parameters=parameters)


class FakeRegistry:
    def __init__(self, family: str | None = None):
        self.family = family

    async def find(self, model_id: str) -> ServedModel | None:
        return served_model(self.family) if model_id == MODEL else None

    async def resolve(self, model_id: str, task: Task) -> ServedModel:
        from adapter.errors import model_not_found  # noqa: PLC0415
        if model_id != MODEL:
            raise model_not_found(model_id)
        return served_model(self.family)


def _prompt_tokens(request: dict[str, Any]) -> tuple[int, str]:
    if "messages" in request:
        text = "".join(f"<{m['role']}>{m['content']}" for m in request["messages"])
    else:
        text = request.get("prompt") or " ".join(map(str, request["prompt_token_ids"]))
    return len(text.split()) or 1, text


def _logprob_entry(token: str, top: int) -> dict:
    alt = [{"token": token, "logprob": -0.5, "bytes": list(token.encode())},
           {"token": "x", "logprob": -1.5, "bytes": [120]}] + [{"token": f"t{k}", "logprob": -3.0 - k, "bytes": None}
                                                                for k in range(20)]
    return {"token": token, "logprob": -0.5, "bytes": list(token.encode()), "top_logprobs": alt[:top]}


class FakeTriton:
    def __init__(self, delay_s: float = 0.0, words: list[str] | None = None):
        self.delay_s, self.words = delay_s, words or WORDS
        self.requests: list[dict] = []
        self.cancelled = 0
        self.completed = 0
        self.sent = 0

    def _response(self, choices: list[dict], usage: tuple[int, int], extra: dict) -> dict[str, np.ndarray]:
        body = {"choices": choices, "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1]}, **extra}
        return {"response": np.array([orjson.dumps(body)], dtype=np.object_)}

    async def stream(self, model: str, inputs: dict[str, np.ndarray], request_id: str = ""):
        request = orjson.loads(inputs["request"].reshape(-1)[0])
        self.requests.append(request)
        if request.get("prompt") == "TOO LONG":
            raise invalid_request("This model's context window is 64 tokens; the prompt has 100.", "messages")
        sampling = request["sampling"]
        n, max_tokens = sampling["n"], sampling["max_tokens"] or len(self.words)
        steps = min(max_tokens, len(self.words))
        finish = "length" if sampling["max_tokens"] and max_tokens <= len(self.words) else "stop"
        prompt_tokens, prompt_text = _prompt_tokens(request)
        extra = {"prompt_text": prompt_text} if request.get("echo") else {}
        done = False
        try:
            for t in range(steps):
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                choices = []
                for i in range(n):
                    token = (f"{i}:" if n > 1 and t == 0 else "") + self.words[t]
                    choices.append({"index": i, "text": token, "finish_reason": finish if t == steps - 1 else None,
                                    "logprobs": {"content": [_logprob_entry(token, sampling["top_logprobs"])]}
                                    if sampling["logprobs"] else None})
                self.sent += 1
                yield self._response(choices, (prompt_tokens, n * (t + 1)), extra if t == 0 else {})
            done = True
            self.completed += 1
        finally:
            if not done:
                self.cancelled += 1
