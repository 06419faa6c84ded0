"""The grammar engine (xgrammar) on a small byte-level vocabulary: compile cache, 400s that name the offending
part, batched masks that leave unconstrained rows alone, and the scheduler producing valid JSON from noise."""
from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest

from runtime.errors import ClientError
from runtime.llm.grammar import GrammarEngine, Guide
from runtime.llm.protocol import SamplingParams
from runtime.llm.scheduler import Scheduler
from runtime.llm.sequence import Job, Vocab
from runtime.llm.session import EngineSession
from runtime.llm.tokenizer import Prompt
from tests.unit.test_llm_scheduler import ListSink

# Every printable ASCII byte, a few multi-character tokens (JSON punctuation merges), two specials.
TOKENS = [bytes([b]) for b in range(32, 127)] + [b'{"', b'": ', b', "', b'"}', b"true", b"false", b"12", b"\x14",
                                                 b"\n", b"a\tb"]
BOS, EOT = len(TOKENS), len(TOKENS) + 1
TABLE = TOKENS + [b"<|begin_of_text|>", b"<|eot_id|>"]
V = len(TABLE)
VOCAB = Vocab(TABLE, frozenset({BOS, EOT}), frozenset({EOT}))
SCHEMA = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 5},
                                           "n": {"type": "integer", "minimum": 0, "maximum": 50},
                                           "tags": {"type": "array", "items": {"enum": ["a", "b"]},
                                                    "maxItems": 2}},
          "required": ["name", "n"], "additionalProperties": False}


@pytest.fixture(scope="module")
def engine() -> GrammarEngine:
    return GrammarEngine(TABLE, VOCAB.special_ids, VOCAB.stop_ids)


def test_each_distinct_guide_compiles_once(engine):
    before = engine.compiles
    a = engine.compile(Guide("json_schema", schema=SCHEMA))
    b = engine.compile(Guide.from_json({"type": "json_schema", "schema": json.loads(json.dumps(SCHEMA))}))
    assert a is b and engine.compiles == before + 1
    engine.compile(Guide("json_schema", schema={**SCHEMA, "required": ["name"]}))
    assert engine.compiles == before + 2


@pytest.mark.parametrize("schema, words", [
    ({"type": "object", "properties": {"a": {"type": "strng"}}}, ["properties.a.type", "not valid"]),
    ({"type": "object", "properties": {"a": {"type": "string", "pattern": "(?<=x)a"}}}, ["Lookbehind"]),
    ({"type": "object", "minProperties": "two"}, ["minProperties"]),
])
def test_unusable_schema_is_a_client_error_naming_the_part(engine, schema, words):
    with pytest.raises(ClientError) as err:
        engine.compile(Guide("json_schema", schema=schema))
    assert err.value.param == "response_format" and all(w in err.value.message for w in words)


def test_tool_schema_errors_name_the_function(engine):
    guide = Guide.from_json({"type": "tool_calls", "tools": [{"name": "f", "parameters": {"type": 3}}]})
    with pytest.raises(ClientError) as err:
        engine.compile(guide)
    assert err.value.param == "tools" and "tools[f]" in err.value.message


def test_mask_touches_only_constrained_rows(engine):
    compiled = engine.compile(Guide("json_schema", schema=SCHEMA))
    logits = np.random.default_rng(0).standard_normal((3, V)).astype(np.float32)
    before = logits.copy()
    engine.mask(logits, [1], [engine.constraint(compiled)])
    assert np.array_equal(logits[[0, 2]], before[[0, 2]])
    allowed = {TABLE[i] for i in np.flatnonzero(np.isfinite(logits[1]))}
    assert allowed == {b"{", b'{"'}  # a document starts with its object (no free whitespace)


def test_no_raw_control_characters_in_bounded_strings(engine):
    compiled = engine.compile(Guide("json_schema", schema=SCHEMA))
    constraint = engine.constraint(compiled)
    for token in (TABLE.index(b'{"'), *(TABLE.index(bytes([c])) for c in b'n": 1, "name": "')):
        constraint.accept(token)
    logits = np.zeros((1, V), np.float32)
    engine.mask(logits, [0], [constraint])
    allowed = {TABLE[i] for i in np.flatnonzero(np.isfinite(logits[0]))}
    assert b"a" in allowed and not allowed & {b"\x14", b"\n", b"a\tb"}


def test_device_logits_get_the_same_mask(engine):
    import torch  # noqa: PLC0415  (the GPU sampling path hands torch tensors; here on the CPU)
    compiled = engine.compile(Guide("json_schema", schema=SCHEMA))
    logits = np.random.default_rng(1).standard_normal((4, V)).astype(np.float32)
    tensor = torch.from_numpy(logits.copy())
    engine.mask(logits, [0, 2], [engine.constraint(compiled), engine.constraint(compiled)])
    engine.mask(tensor, [0, 2], [engine.constraint(compiled), engine.constraint(compiled)])
    assert np.array_equal(tensor.numpy(), logits)


class NoiseEngine(EngineSession):
    """Random logits: whatever comes out valid is the grammar's doing."""

    vocab_size = V

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def prefill(self, slot, tokens, start=0, logits=True):
        return self.rng.standard_normal(V).astype(np.float32) * 4 if logits else None

    def decode(self, slots, tokens):
        return self.rng.standard_normal((len(slots), V)).astype(np.float32) * 4

    def copy(self, source, targets, length):
        pass


def run_jobs(engine, guide: Guide | None, n: int, seed: int, max_tokens: int = 80, plain_rows: int = 1):
    compiled = engine.compile(guide) if guide else None
    scheduler = Scheduler(NoiseEngine(seed), VOCAB, max_batch_size=16, grammar=engine)
    params = SamplingParams(n=n, seed=seed, max_tokens=max_tokens)
    constrained = Job(Prompt([BOS, 5], ""), params, VOCAB, ListSink(), 4096,
                      constraints=(lambda: engine.constraint(compiled)) if compiled else None)
    free = [Job(Prompt([BOS, 7], ""), SamplingParams(seed=seed, max_tokens=6), VOCAB, ListSink(), 4096)
            for _ in range(plain_rows)]
    for job in [constrained, *free]:
        scheduler.submit(job)
    scheduler.run_until_idle()
    return constrained, free


def texts(job: Job) -> list[tuple[str, str]]:
    out = {}
    for response in job.sink.responses:
        for c in response["choices"]:
            text, reason = out.get(c["index"], ("", None))
            out[c["index"]] = (text + c["text"], c["finish_reason"] or reason)
    return [out[i] for i in sorted(out)]


@pytest.mark.parametrize("seed", range(5))
def test_scheduler_turns_noise_into_valid_json_beside_free_rows(engine, seed):
    job, free = run_jobs(engine, Guide("json_schema", schema=SCHEMA), n=3, seed=seed)
    for text, reason in texts(job):
        assert reason == "stop", text
        jsonschema.validate(json.loads(text), SCHEMA)
    assert all(len(c.token_ids) == 6 for j in free for c in j.choices)  # unconstrained rows ran free (no EOS mask)


def test_json_cut_by_max_tokens_finishes_with_length(engine):
    job, _ = run_jobs(engine, Guide("json_schema", schema=SCHEMA), n=1, seed=1, max_tokens=3)
    (text, reason), = texts(job)
    assert reason == "length" and text.startswith("{")


@pytest.mark.parametrize("parallel", [False, True])
def test_tool_call_grammar_emits_only_calls(engine, parallel):
    from adapter.llm.tool_calls import parse_tool_calls  # noqa: PLC0415  (the adapter's parser reads them back)
    params = {"type": "object", "properties": {"x": {"type": "integer", "minimum": 0, "maximum": 9}},
              "required": ["x"], "additionalProperties": False}
    guide = Guide.from_json({"type": "tool_calls", "parallel": parallel,
                             "tools": [{"name": "f", "parameters": params}, {"name": "g", "parameters": None}]})
    for seed in range(4):
        job, _ = run_jobs(engine, guide, n=2, seed=seed, max_tokens=400, plain_rows=0)
        for text, reason in texts(job):
            calls = parse_tool_calls(text)
            assert reason == "stop" and calls, text
            assert parallel or len(calls) == 1
            for call in calls:
                assert call.name in ("f", "g")
                if call.name == "f":
                    jsonschema.validate(json.loads(call.arguments), params)
