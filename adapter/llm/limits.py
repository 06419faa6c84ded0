"""Checks of a request against the served model's context window and vocabulary (config parameters)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapter.errors import invalid_request
from adapter.model_registry import ServedModel

MAX_MODEL_LEN_PARAMETER = "max_model_len"
VOCAB_SIZE_PARAMETER = "vocab_size"


@dataclass(frozen=True)
class ModelLimits:
    max_model_len: int | None  # context window in tokens
    vocab_size: int | None

    @classmethod
    def of(cls, model: ServedModel) -> "ModelLimits":
        def number(name: str) -> int | None:
            value = model.parameters.get(name)
            return int(value) if value else None
        return cls(number(MAX_MODEL_LEN_PARAMETER), number(VOCAB_SIZE_PARAMETER))

    def check_max_tokens(self, max_tokens: int | None, param: str) -> None:
        if max_tokens is not None and self.max_model_len is not None and max_tokens > self.max_model_len:
            raise invalid_request(f"`{param}` is {max_tokens}, more than this model's context window of "
                                  f"{self.max_model_len} tokens.", param, "context_length_exceeded")

    def check_logit_bias(self, bias: dict[str, Any]) -> None:
        for key in bias:
            if not self._in_vocab(int(key)):
                raise invalid_request(f"Invalid key in 'logit_bias': {key} is not a token id of this model "
                                      f"(vocabulary size {self.vocab_size}).", "logit_bias")

    def check_token_ids(self, ids: list[int], param: str) -> None:
        bad = next((i for i in ids if not self._in_vocab(i)), None)
        if bad is not None:
            raise invalid_request(f"Invalid token id {bad} in '{param}': this model's vocabulary has "
                                  f"{self.vocab_size} tokens.", param)

    def check_sampling(self, sampling: dict[str, Any], max_tokens_param: str) -> None:
        self.check_max_tokens(sampling["max_tokens"], max_tokens_param)
        self.check_logit_bias(sampling["logit_bias"])

    def _in_vocab(self, token_id: int) -> bool:
        return token_id >= 0 and (self.vocab_size is None or token_id < self.vocab_size)
