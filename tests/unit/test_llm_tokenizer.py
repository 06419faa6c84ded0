"""The tiny model's tokenizer: Llama-3 special tokens and chat template, loadable as PreTrainedTokenizerFast,
deterministic from the seed; byte table round trips; preprocessing of the three request shapes."""
from __future__ import annotations

import json

import pytest

from builders.llm.tiny import CHAT_TEMPLATE, SPECIAL_TOKENS, TinySpec, save_tokenizer, train_tokenizer
from runtime.errors import ClientError
from runtime.llm.detokenizer import detokenize
from runtime.llm.protocol import GenerationRequest
from runtime.llm.tokenizer import LlamaTokenizer

SPEC = TinySpec(seed=3, vocab_size=500)


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tok")
    save_tokenizer(train_tokenizer(SPEC), out)
    (out / "generation_config.json").write_text(json.dumps({"eos_token_id": [1]}))
    return out


@pytest.fixture(scope="module")
def tok(tok_dir):
    return LlamaTokenizer(tok_dir)


def test_saved_for_transformers_4_and_5(tok_dir):
    from transformers import PreTrainedTokenizerFast

    cfg = json.loads((tok_dir / "tokenizer_config.json").read_text())
    assert cfg["tokenizer_class"] == "PreTrainedTokenizerFast" and cfg["chat_template"] == CHAT_TEMPLATE
    assert not (tok_dir / "chat_template.jinja").exists()
    assert PreTrainedTokenizerFast.from_pretrained(tok_dir).eos_token == "<|eot_id|>"


def test_training_is_deterministic():
    assert train_tokenizer(SPEC).to_str() == train_tokenizer(SPEC).to_str()


def test_special_tokens_follow_the_vocabulary_and_stop(tok):
    ids = [tok.hf.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS]
    assert ids == list(range(ids[0], ids[0] + len(SPECIAL_TOKENS))) and ids[0] > 256
    assert {tok.hf.convert_tokens_to_ids(t) for t in ("<|eot_id|>", "<|end_of_text|>")} <= tok.stop_ids
    assert 1 in tok.stop_ids  # from generation_config.json


@pytest.mark.parametrize("text", ["Hello world", "café naïve 日本語 🙂🚀", "  spaces\n\nand\ttabs  ", "x" * 50])
def test_byte_table_round_trips(tok, text):
    ids = tok.hf.encode(text, add_special_tokens=False)
    assert detokenize(ids, tok.token_bytes, tok.special_ids) == text == tok.decode(ids)


def test_prompts_for_chat_text_and_token_ids(tok):
    chat = tok.prompt(GenerationRequest.from_json(
        '{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}', 600), 2048)
    assert chat.text == ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                         "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                         "<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert chat.token_ids.count(tok.hf.bos_token_id) == 1
    text = tok.prompt(GenerationRequest.from_json('{"prompt": "Hi there"}', 600), 2048)
    assert text.token_ids[0] == tok.hf.bos_token_id and text.text == "Hi there"
    hi = tok.hf.encode("Hi", add_special_tokens=False)
    ids = tok.prompt(GenerationRequest.from_json(json.dumps({"prompt_token_ids": hi}), 600), 2048)
    assert ids.token_ids == hi and ids.text == "Hi"
    with pytest.raises(ClientError, match="maximum context length is 5 tokens.*prompt has 6"):
        tok.prompt(GenerationRequest.from_json('{"prompt_token_ids": [1, 2, 3, 4, 5, 6]}', 600), 5)
