"""Constrained decoding: a request's guide (JSON object, JSON schema, tool calls) compiled by xgrammar into a
token-level grammar; the scheduler masks the logits of every constrained row of a batch before sampling.

Why xgrammar: at a 128k-token vocabulary its per-token mask costs less than llguidance's, with a flat tail at
structural positions (bench/grammar_engines.py compares them), and it builds from our raw token-byte table.
Compilation is slow next to a decode step, so it happens once per distinct guide (an LRU keyed by the guide's
canonical JSON), in the request's thread, never in the decode loop.

Outputs use the separators real models write (", " and ": "), no free whitespace: a random-weights model
cannot stall a document on whitespace, and a real one stays on its own style. Tool calls take the shape of the
model family's ToolCallFormat (runtime/llm/families).
"""
from __future__ import annotations

import functools
import json
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from runtime.errors import ClientError
from runtime.llm.families import DEFAULT_FAMILY
from runtime.llm.families.base import ToolCallFormat

_CONTROL = re.compile(rb"[\x00-\x1f]")
NO_ARGUMENTS = {"type": "object", "properties": {}, "additionalProperties": False}  # a function without parameters


@dataclass(frozen=True)
class Guide:
    """What the output must be. Wire form (the generator request's "guide"):
    {"type": "json_object"} | {"type": "json_schema", "schema": {...}} |
    {"type": "tool_calls", "tools": [{"name", "parameters"}], "parallel": bool}."""
    type: str
    schema: Any = None
    tools: tuple[tuple[str, str], ...] = ()  # (name, parameters schema as canonical JSON)
    parallel: bool = True

    @classmethod
    def from_json(cls, obj: dict[str, Any] | None) -> "Guide | None":
        if not obj:
            return None
        kind = obj.get("type")
        if kind == "json_object":
            return cls(kind)
        if kind == "json_schema":
            schema = obj.get("schema")
            if not isinstance(schema, (dict, bool)):
                raise ClientError("response_format.json_schema.schema must be a JSON schema object",
                                  "response_format")
            return cls(kind, schema=schema)
        if kind == "tool_calls":
            tools = tuple((t["name"], _canonical(t.get("parameters") or NO_ARGUMENTS)) for t in obj.get("tools") or ())
            if not tools:
                raise ClientError("tool_choice needs at least one function in tools", "tool_choice")
            return cls(kind, tools=tools, parallel=bool(obj.get("parallel", True)))
        raise ClientError(f"unknown guide type {kind!r}", "response_format")

    @property
    def key(self) -> str:
        return _canonical([self.type, self.schema, self.tools, self.parallel])

    @property
    def param(self) -> str:
        return "tools" if self.type == "tool_calls" else "response_format"


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class Constraint:
    """One choice's position in its grammar."""

    def __init__(self, matcher: Any):
        self.matcher = matcher

    def accept(self, token_id: int) -> None:
        if not self.matcher.accept_token(token_id):  # the mask makes this unreachable; a bug if it happens
            raise RuntimeError(f"token {token_id} was sampled outside the grammar")

    @property
    def complete(self) -> bool:
        return self.matcher.is_terminated()


class GrammarEngine:
    """xgrammar over the model's token table: compiles guides (cached) and masks batches of logits."""

    def __init__(self, token_bytes: Sequence[bytes], special_ids: frozenset[int], stop_ids: frozenset[int],
                 cache_size: int = 256, tool_calls: ToolCallFormat = DEFAULT_FAMILY.tool_calls):
        self._token_bytes, self._special, self._stop = token_bytes, special_ids, stop_ids
        self._tool_calls = tool_calls
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._compiler: Any = None
        self._bitmask: Any = None
        self.compiles = 0          # distinct guides compiled (the cache's misses)
        self.mask_seconds = 0.0    # time spent filling and applying masks (bench)
        self.masked_rows = 0

    # -- compiling ------------------------------------------------------------------------------------------
    def compile(self, guide: Guide) -> Any:
        key = guide.key
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        compiled = self._compile(guide)
        with self._lock:
            self._cache[key] = compiled
            self.compiles += 1
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return compiled

    def constraint(self, compiled: Any) -> Constraint:
        xgr = _xgrammar()
        return Constraint(xgr.GrammarMatcher(compiled))

    def _compile(self, guide: Guide) -> Any:
        compiler = self._get_compiler()
        try:
            if guide.type == "json_object":
                return compiler.compile_json_schema('{"type": "object"}', any_whitespace=False, strict_mode=False)
            if guide.type == "json_schema":
                check_schema(guide.schema, "response_format.json_schema.schema", guide.param)
                return compiler.compile_json_schema(_canonical(guide.schema), any_whitespace=False)
            for name, params in guide.tools:
                check_schema(json.loads(params), f"tools[{name}].function.parameters", guide.param)
            return compiler.compile_structural_tag(tool_call_tag(guide, self._tool_calls))
        except ClientError:
            raise
        except Exception as exc:  # xgrammar: RuntimeError/ValueError/InvalidJSONError naming the unsupported part
            raise ClientError(f"{guide.param}: the schema cannot be used for constrained decoding: "
                              f"{_first_line(exc)}", guide.param, "invalid_schema") from exc

    def _get_compiler(self) -> Any:
        with self._lock:
            if self._compiler is None:
                xgr = _xgrammar()
                # "" = never allowed. Control bytes go too: JSON strings cannot hold them raw, yet xgrammar 0.2.9's
                # length-bounded strings (maxLength) let them through; outputs need no raw tab or newline.
                vocab = [b"" if (i in self._special and i not in self._stop) or _CONTROL.search(t) else t
                         for i, t in enumerate(self._token_bytes)]
                info = xgr.TokenizerInfo(vocab, xgr.VocabType.RAW, vocab_size=len(vocab),
                                         stop_token_ids=sorted(self._stop))
                self._compiler = xgr.GrammarCompiler(info, max_threads=2, cache_enabled=False)
            return self._compiler

    # -- masking (the scheduler thread) ---------------------------------------------------------------------
    def mask(self, logits: np.ndarray, rows: list[int], constraints: list[Constraint]) -> None:
        """Set to -inf, in place, every logit the grammar forbids in the given rows: logits [batch, vocab].

        One fill per row (xgrammar's BatchGrammarMatcher threads cost more than they saved on a few loaded cores)
        into one bitmask, then one vectorized apply over all constrained rows (numpy: measured several times
        faster than xgrammar's CPU kernel at 128k tokens)."""
        if not rows:
            return
        t0 = time.perf_counter()
        vocab = len(self._token_bytes)
        bitmask = self._bitmask_for(len(logits), vocab)  # [batch, ceil(vocab / 32)] int32, bit set = allowed
        for row, constraint in zip(rows, constraints):
            constraint.matcher.fill_next_token_bitmask(bitmask, row)
        apply_bitmask(logits, bitmask, rows, vocab)
        self.mask_seconds += time.perf_counter() - t0
        self.masked_rows += len(rows)

    def _bitmask_for(self, batch: int, vocab: int) -> np.ndarray:
        if self._bitmask is None or self._bitmask.shape[0] < batch:
            self._bitmask = np.full((max(batch, 8), (vocab + 31) // 32), -1, np.int32)
        return self._bitmask


@functools.singledispatch
def apply_bitmask(logits: Any, bitmask: np.ndarray, rows: list[int], vocab: int) -> None:
    """Device logits (torch tensors, the GPU sampling path): xgrammar's kernel where the logits live."""
    mask = _torch().from_numpy(bitmask).to(logits.device, non_blocking=True)
    _xgrammar().apply_token_bitmask_inplace(logits, mask, vocab_size=vocab, indices=rows)


@apply_bitmask.register
def _(logits: np.ndarray, bitmask: np.ndarray, rows: list[int], vocab: int) -> None:
    allowed = np.unpackbits(bitmask[rows].view(np.uint8), axis=1, count=vocab, bitorder="little").view(bool)
    sub = logits[rows, :vocab]
    np.putmask(sub, ~allowed, -np.inf)
    logits[rows, :vocab] = sub


def tool_call_tag(guide: Guide, fmt: ToolCallFormat = DEFAULT_FAMILY.tool_calls) -> Any:
    """Tool calls in the family's format and nothing else (Llama-3: `{"name": "f", "parameters": {...}}`), several
    joined by its separator when parallel calls are allowed (one allowed function = a named tool_choice)."""
    st = _xgrammar().structural_tag
    tags = [st.TagFormat(begin=fmt.call_begin(name),
                         content=st.JSONSchemaFormat(json_schema=json.loads(params), max_whitespace_cnt=1),
                         end=fmt.end) for name, params in guide.tools]
    calls = st.TagsWithSeparatorFormat(tags=tags, separator=fmt.separator, at_least_one=True,
                                       stop_after_first=not guide.parallel)
    return st.StructuralTag(format=calls)


def check_schema(schema: Any, where: str, param: str) -> None:
    """The schema is itself valid JSON Schema (Draft 2020-12); the error names the offending part."""
    import jsonschema  # noqa: PLC0415  (only constrained requests need it)

    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        raise ClientError(f"{where} must be a JSON schema object", param, "invalid_schema")
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(
        jsonschema.Draft202012Validator.META_SCHEMA).iter_errors(schema))
    if error is not None:
        path = "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        raise ClientError(f"{where}{path} is not valid JSON Schema: {error.message}", param, "invalid_schema")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]


def _torch() -> Any:
    import torch  # noqa: PLC0415

    return torch


def _xgrammar() -> Any:
    import xgrammar  # noqa: PLC0415  (imports torch: paid by the first constrained request only)

    return xgrammar
