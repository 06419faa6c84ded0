"""Shared by the chat and completions integration tests: the served LLM's config and its tokenizer."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import httpx
from tokenizers import Tokenizer

from runtime.llm.protocol import GeneratorConfig

MODEL = "tiny-llama-3"


@dataclass(frozen=True)
class ServedLlm:
    max_model_len: int
    vocab_size: int
    max_batch_size: int
    tokenizer: Tokenizer

    def token_text(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id], skip_special_tokens=False)

    def ids_with_text(self, text: str) -> list[int]:
        return [i for i in range(self.vocab_size) if self.token_text(i) == text]

    def word_token(self) -> int:
        """A token that is a plain lowercase word with a leading space (decodes the same when repeated)."""
        return next(i for i in range(self.vocab_size) if re.fullmatch(r" [a-z]{3,}", self.token_text(i)))


def served_llm(triton_http_url: str, repository: Path) -> ServedLlm:
    config = httpx.get(f"{triton_http_url}/v2/models/{MODEL}/config", timeout=10).json()
    params = {k: v["string_value"] for k, v in config["parameters"].items()}
    tokenizer = Tokenizer.from_file(str(next(repository.glob(f"{MODEL}/*/tokenizer/tokenizer.json"))))
    generator = GeneratorConfig.from_parameters(params)  # the contract's parameter keys and defaults
    return ServedLlm(generator.max_model_len, generator.vocab_size, generator.max_batch_size, tokenizer)


def stop_across_tokens(deltas: list[str]) -> tuple[str, int] | None:
    """A stop string made of the end of one streamed delta and the start of the next, whose first occurrence
    in the text is exactly there (so it really spans a token boundary); returns it and that position."""
    text, pos = "".join(deltas), 0
    for left, right in zip(deltas, deltas[1:]):
        pos += len(left)
        a, b = left[-2:], right[:2]
        stop = a + b
        if a and b and stop.strip() and text.find(stop) == pos - len(a):
            return stop, pos - len(a)
    return None
