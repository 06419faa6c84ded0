"""A second model family through the registry: a fake ChatML-style family with its own template, stop tokens and
tool-call format (`<tool_call>{"name": ..., "arguments": ...}</tool_call>`) is picked by name and by checkpoint,
and the chat template, stop ids, grammar tag and tool-call parsers the stack uses are its own, down to the chat
endpoint's responses (JSON and SSE) for a served model whose config.pbtxt names the family."""
from __future__ import annotations

import json
import re

import httpx
import pytest

from adapter.app import create_app
from adapter.llm import tool_calls
from builders.deploy import detect_family
from runtime.llm import families
from runtime.llm.families.base import CallDelta, ModelFamily, ParsedCall, ToolCallFormat
from runtime.llm.grammar import Guide, tool_call_tag
from runtime.llm.tokenizer import ChatTokenizer
from bench.fake_llm_triton import MODEL, FakeRegistry, FakeTriton

TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
            "{% if tools %}<|im_start|>tools\n{{ tools | tojson }}<|im_end|>\n{% endif %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.S)


def parse(text: str) -> list[ParsedCall] | None:
    bodies = CALL.findall(text)
    if not bodies or CALL.sub("", text).strip():
        return None
    calls = [json.loads(b) for b in bodies]
    return [ParsedCall(c["name"], json.dumps(c["arguments"])) for c in calls]


class WholeTextStream:
    """Holds everything and answers at the end: the simplest valid ToolCallStream."""

    def __init__(self):
        self.text = ""

    def feed(self, text: str) -> tuple[str, list[CallDelta]]:
        self.text += text
        return "", []

    def finish(self, finish_reason: str | None) -> tuple[str, list[CallDelta], str | None]:
        calls = parse(self.text)
        if calls is None:
            return self.text, [], finish_reason
        deltas = [CallDelta(i, f"call_{i}", c.name, c.arguments) for i, c in enumerate(calls)]
        return "", deltas, "tool_calls"


FAKE = ModelFamily(
    name="fake-chatml", model_types=frozenset({"fakeformer"}), chat_template=TEMPLATE, bos_token="<|endoftext|>",
    eos_token="<|im_end|>", stop_tokens=("<|im_end|>", "<|endoftext|>"),
    special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
    tool_calls=ToolCallFormat(begin='<tool_call>{"name": "%s", "arguments": ', end="}</tool_call>", separator="\n"),
    parse_tool_calls=parse, tool_call_stream=WholeTextStream)


@pytest.fixture
def fake():
    families.register(FAKE)
    yield FAKE
    families.unregister(FAKE.name)


@pytest.fixture
def tokenizer_dir(tmp_path, fake):
    """A byte-level BPE tokenizer (no merges) with the fake family's special tokens and template."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers  # noqa: PLC0415
    from transformers import PreTrainedTokenizerFast  # noqa: PLC0415

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tok = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(sorted(alphabet))}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in fake.special_tokens])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=fake.bos_token, eos_token=fake.eos_token,
                                   chat_template=fake.chat_template)
    fast.save_pretrained(tmp_path)
    cfg_path = tmp_path / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg.setdefault("chat_template", fake.chat_template)
    cfg_path.write_text(json.dumps(cfg))
    return tmp_path


def test_the_registry_picks_the_family_by_name_parameter_and_checkpoint(fake, tmp_path):
    assert families.get_family("fake-chatml") is fake
    assert families.family_of_parameters({families.FAMILY_PARAMETER: "fake-chatml"}) is fake
    assert families.family_for_checkpoint({"model_type": "fakeformer"}) is fake
    assert families.get_family(None) is families.DEFAULT_FAMILY is families.get_family("llama3")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "fakeformer"}))
    assert detect_family(tmp_path) == "llm"  # the builders deploy it as an LLM because a family serves it


def test_unknown_families_are_refused(fake):
    with pytest.raises(families.UnknownFamily, match="fake-chatml"):
        families.get_family("mistral-someday")
    with pytest.raises(ValueError, match="already registered"):
        families.register(ModelFamily(**{**FAKE.__dict__}))


def test_the_tokenizer_renders_the_family_template_and_stops_on_its_tokens(fake, tokenizer_dir):
    tok = ChatTokenizer(tokenizer_dir, families.get_family("fake-chatml"))
    text = tok.chat_text([{"role": "user", "content": "hi"}], None)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    stops = {tok.hf.convert_tokens_to_ids(t) for t in fake.stop_tokens}
    assert stops <= tok.stop_ids
    assert tok.hf.convert_tokens_to_ids("<|eot_id|>") not in tok.stop_ids  # Llama-3's stop token is not its


def test_the_adapter_parses_tool_calls_with_the_family_parser(fake):
    text = '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    assert tool_calls.parse_tool_calls(text, fake) == [ParsedCall("get_weather", '{"city": "Paris"}')]
    assert tool_calls.parse_tool_calls(text) is None  # Llama-3's parser does not read this format
    stream = tool_calls.ToolCallStream(fake)
    assert stream.feed(text[:20]) == ("", []) and stream.feed(text[20:]) == ("", [])
    content, deltas, reason = stream.finish("stop")
    assert (content, reason) == ("", "tool_calls")
    assert [(d.name, json.loads(d.arguments)) for d in deltas] == [("get_weather", {"city": "Paris"})]


def test_the_grammar_forces_the_family_tool_call_format(fake):
    guide = Guide.from_json({"type": "tool_calls", "tools": [{"name": "f", "parameters": {"type": "object"}}]})
    tag = tool_call_tag(guide, fake.tool_calls)
    dumped = json.dumps(tag.model_dump(mode="json"))
    assert '<tool_call>{\\"name\\": \\"f\\", \\"arguments\\": ' in dumped and "}</tool_call>" in dumped
    llama = json.dumps(tool_call_tag(guide).model_dump(mode="json"))
    assert '{\\"name\\": \\"f\\", \\"parameters\\": ' in llama and "<tool_call>" not in llama


def test_a_served_model_knows_its_family(fake):
    from adapter.model_registry import ServedModel  # noqa: PLC0415
    from runtime.contract import Task  # noqa: PLC0415

    model = ServedModel("m", Task.TEXT_GENERATION, 0, parameters={families.FAMILY_PARAMETER: "fake-chatml"})
    assert model.family is fake
    assert ServedModel("old", Task.TEXT_GENERATION, 0).family is families.DEFAULT_FAMILY


# The fake generator's tokens: one tool call in the fake family's format, cut where a tokenizer might cut it.
CALL_TOKENS = ['<tool_call>{"name": "get_weather", ', '"arguments": {"city": ', '"Paris"}}', "</tool_call>"]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
TOOL_CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "weather in Paris?"}], "tools": TOOLS}


@pytest.fixture
def chat_http(fake):
    """The adapter with a served model whose `model_family` is the fake family, over a generator that answers
    with one call in that family's format."""
    app = create_app()
    app.state.triton, app.state.registry = FakeTriton(words=CALL_TOKENS), FakeRegistry(family=fake.name)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_the_chat_response_reads_tool_calls_with_the_served_models_family(chat_http):
    async with chat_http as http:
        response = await http.post("/v1/chat/completions", json=TOOL_CHAT)
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}


async def test_the_chat_stream_reads_tool_calls_with_the_served_models_family(chat_http):
    events = []
    async with chat_http as http, http.stream("POST", "/v1/chat/completions",
                                              json={**TOOL_CHAT, "stream": True}) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                events.append(json.loads(line[6:]))
    deltas = [c["delta"] for e in events for c in e["choices"]]
    assert not any(d.get("content") for d in deltas)  # no token of the call leaks out as content
    calls = [c for d in deltas for c in d.get("tool_calls") or ()]
    assert [c["function"]["name"] for c in calls if c["function"].get("name")] == ["get_weather"]
    assert json.loads("".join(c["function"]["arguments"] or "" for c in calls)) == {"city": "Paris"}
    assert [c["finish_reason"] for e in events for c in e["choices"] if c["finish_reason"]] == ["tool_calls"]
