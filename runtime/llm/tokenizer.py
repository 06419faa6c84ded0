"""Preprocessing (chat template, tokenization, context check) and the per-token byte table that
detokenization and logprobs share."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import ClientError
from runtime.llm.families import DEFAULT_FAMILY
from runtime.llm.families.base import ModelFamily
from runtime.llm.protocol import GenerationRequest


def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's bytes_to_unicode: byte-level BPE token characters -> raw bytes."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


@dataclass(frozen=True)
class Prompt:
    token_ids: list[int]
    text: str  # the prompt as text (echo)


class ChatTokenizer:
    """A Hugging Face fast tokenizer (byte-level BPE) plus what generation needs from it; the model family names
    the tokens that stop generation."""

    def __init__(self, path: str | Path, family: ModelFamily = DEFAULT_FAMILY):
        from transformers import AutoTokenizer  # noqa: PLC0415  (heavy; only where it is used)

        self.hf = AutoTokenizer.from_pretrained(str(path))
        self.family = family
        self.vocab_size = len(self.hf)
        special = set(self.hf.all_special_ids) | {i for i, t in self.hf.added_tokens_decoder.items() if t.special}
        self.special_ids = frozenset(special)
        self.token_bytes = self._token_bytes()
        self.stop_ids = frozenset(self._stop_ids(Path(path)))

    def _token_bytes(self) -> list[bytes]:
        decoder = _byte_decoder()
        table = [b""] * self.vocab_size
        for token, i in self.hf.get_vocab().items():  # one dict walk: 128k single-id lookups take seconds
            if i in self.special_ids or not all(ch in decoder for ch in token):
                table[i] = token.encode("utf-8")
            else:
                table[i] = bytes(decoder[ch] for ch in token)
        return table

    def _stop_ids(self, path: Path) -> set[int]:
        ids = {self.hf.convert_tokens_to_ids(t) for t in self.family.stop_tokens if t in self.hf.get_vocab()}
        if self.hf.eos_token_id is not None:
            ids.add(self.hf.eos_token_id)
        gen = path / "generation_config.json"
        if gen.exists():
            eos = json.loads(gen.read_text()).get("eos_token_id")
            ids |= set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        return ids

    def token_text(self, token_id: int) -> str:
        return self.token_bytes[token_id].decode("utf-8", errors="replace")

    def decode(self, ids: list[int]) -> str:
        return self.hf.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def chat_text(self, messages: list[dict], tools: list[dict] | None) -> str:
        """The model's own chat template; it renders tools, assistant tool calls and tool results."""
        try:
            return self.hf.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=True)
        except Exception as exc:  # noqa: BLE001  (jinja's raise_exception: a conversation the template refuses)
            raise ClientError(f"the model's chat template cannot render these messages: {exc}", "messages") from exc

    def prompt(self, request: GenerationRequest, max_model_len: int) -> Prompt:
        if request.prompt_token_ids is not None:
            ids = list(request.prompt_token_ids)
            text = self.decode(ids)
        elif request.messages is not None:
            text = self.chat_text(request.messages, request.tools)
            ids = self.hf.encode(text, add_special_tokens=False)
        else:
            text = request.prompt or ""
            ids = self.hf.encode(text, add_special_tokens=True)
        check_length(len(ids), request.sampling.max_tokens, max_model_len,
                     "messages" if request.messages is not None else "prompt")
        return Prompt(ids, text)


def check_length(prompt_tokens: int, max_tokens: int | None, max_model_len: int, prompt_param: str = "prompt") -> None:
    """The prompt leaves room in the context, and so does max_tokens after it. prompt_param: the request field
    that holds the prompt (`messages` for chat). The contract names the completion's length `max_tokens`; the
    adapter renames it to the field its client sent."""
    if prompt_tokens >= max_model_len:
        raise ClientError(f"This model's maximum context length is {max_model_len} tokens, but the prompt has "
                          f"{prompt_tokens} tokens (no room left for the completion).", prompt_param,
                          "context_length_exceeded")
    if max_tokens is not None and prompt_tokens + max_tokens > max_model_len:
        raise ClientError(f"This model's maximum context length is {max_model_len} tokens. However, you requested "
                          f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the prompt, {max_tokens} for the "
                          f"completion).", "max_tokens", "context_length_exceeded")
