"""Grammar engines for constrained decoding, side by side at a real vocabulary: xgrammar vs llguidance.

  .venv/bin/python bench/grammar_engines.py [--tokenizer build/model_repository/tiny-llama-3/1/tokenizer]
  (llguidance is not a project dependency: `pip install llguidance==1.9.1` into the venv to measure it)

Both engines get the same token table (runtime.llm.tokenizer: raw bytes per id; Llama-3's 128,256 tokens in the
demo model) and the same JSON schema, and walk one valid document token by token, as the generator does: at each
step fill the next-token bitmask, apply it to a row of logits, advance by the document's token. Reported: the
schema's compile time and the per-token cost (median, p90, mean, microseconds) of fill + apply + advance,
for one row and for a batch of 8 rows, cold (first document) and warm. Fills: xgrammar one matcher at a time
(what the generator does), llguidance its parallel batched fill; the apply is the generator's (numpy) for both.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runtime.llm.tokenizer import ChatTokenizer  # noqa: E402

SCHEMA = {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 40},
    "age": {"type": "integer", "minimum": 0, "maximum": 150},
    "email": {"type": "string"},
    "tags": {"type": "array", "items": {"type": "string", "enum": ["red", "green", "blue"]}, "minItems": 1,
             "maxItems": 4},
    "address": {"type": "object", "properties": {"street": {"type": "string"}, "city": {"type": "string"},
                                                 "zip": {"type": "string", "pattern": "^[0-9]{5}$"}},
                "required": ["street", "city"], "additionalProperties": False},
    "score": {"type": "number", "minimum": 0, "maximum": 1}},
    "required": ["name", "age", "tags", "address"], "additionalProperties": False}
DOCUMENT = {"name": "Ada Lovelace, Countess", "age": 36, "email": "ada@example.org", "tags": ["red", "blue", "green"],
            "address": {"street": "12 St James's Square", "city": "London", "zip": "12345"}, "score": 0.875}


def stats(name: str, compile_s: float, per_token_us: list[float]) -> dict:
    return {"engine": name, "compile_ms": 1e3 * compile_s, "median_us": statistics.median(per_token_us),
            "p90_us": float(np.percentile(per_token_us, 90)), "mean_us": statistics.fmean(per_token_us)}


def apply_mask(logits: np.ndarray, bitmask: np.ndarray) -> None:
    """The generator's apply (runtime.llm.grammar): -inf where the bit is 0, vectorized over the rows."""
    vocab = logits.shape[1]
    allowed = np.unpackbits(bitmask.view(np.uint8), axis=1, count=vocab, bitorder="little").view(bool)
    np.putmask(logits, ~allowed, -np.inf)


def walk(fill, apply, advance, doc: list[int], batch: int) -> list[float]:
    out = []
    for token in doc:
        t0 = time.perf_counter()
        fill()
        apply()
        advance(token)
        out.append(1e6 * (time.perf_counter() - t0) / batch)
    return out


def bench_xgrammar(tok: ChatTokenizer, doc: list[int], batch: int, reps: int) -> list[dict]:
    import xgrammar as xgr

    table = [b"" if i in tok.special_ids and i not in tok.stop_ids else t for i, t in enumerate(tok.token_bytes)]
    info = xgr.TokenizerInfo(table, xgr.VocabType.RAW, vocab_size=len(table), stop_token_ids=sorted(tok.stop_ids))
    compiler = xgr.GrammarCompiler(info, max_threads=2, cache_enabled=False)
    t0 = time.perf_counter()
    compiled = compiler.compile_json_schema(json.dumps(SCHEMA), any_whitespace=False)
    compile_s = time.perf_counter() - t0
    bitmask = np.full((batch, (len(table) + 31) // 32), -1, np.int32)
    logits = np.random.default_rng(0).standard_normal((batch, len(table))).astype(np.float32)
    out = []
    for rep in range(reps):
        matchers = [xgr.GrammarMatcher(compiled) for _ in range(batch)]
        per = walk(lambda: [m.fill_next_token_bitmask(bitmask, i) for i, m in enumerate(matchers)],  # as served
                   lambda: apply_mask(logits, bitmask),
                   lambda t: all(m.accept_token(t) for m in matchers), doc, batch)
        out.append(stats(f"xgrammar batch={batch} {'cold' if rep == 0 else 'warm'}", compile_s, per))
    return out


def bench_llguidance(tok: ChatTokenizer, doc: list[int], batch: int, reps: int) -> list[dict]:
    import llguidance as llg
    import llguidance.hf
    import llguidance.numpy as lnp

    lltok = llguidance.hf.from_tokenizer(tok.hf, n_vocab=len(tok.token_bytes), eos_token=sorted(tok.stop_ids))
    t0 = time.perf_counter()
    grammar = llg.LLMatcher.grammar_from_json_schema(SCHEMA, defaults={"whitespace_flexible": False,
                                                                       "item_separator": ", ",
                                                                       "key_separator": ": "})
    template = llg.LLMatcher(lltok, grammar)
    compile_s = time.perf_counter() - t0
    assert not template.is_error(), template.get_error()
    bitmask = lnp.allocate_token_bitmask(batch, len(tok.token_bytes))
    logits = np.random.default_rng(0).standard_normal((batch, len(tok.token_bytes))).astype(np.float32)
    executor, out = llg.LLExecutor(), []
    for rep in range(reps):
        matchers = [template.deep_copy() for _ in range(batch)]
        per = walk(lambda: lnp.fill_next_token_bitmask_par(executor, [(m, i) for i, m in enumerate(matchers)],
                                                            bitmask),
                   lambda: apply_mask(logits, bitmask),
                   lambda t: all(m.consume_token(t) for m in matchers), doc, batch)
        out.append(stats(f"llguidance batch={batch} {'cold' if rep == 0 else 'warm'}", compile_s, per))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", type=Path,
                        default=ROOT / "build" / "model_repository" / "tiny-llama-3" / "1" / "tokenizer")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    tok = ChatTokenizer(args.tokenizer)
    doc = tok.hf.encode(json.dumps(DOCUMENT), add_special_tokens=False) + [min(tok.stop_ids)]
    print(f"vocabulary {len(tok.token_bytes)} tokens, document {len(doc)} tokens", flush=True)
    print("| engine | compile ms | median us/token | p90 us/token | mean us/token |\n|---|---|---|---|---|")
    for bench in (bench_xgrammar, bench_llguidance):
        for batch in (1, 8):
            try:
                rows = bench(tok, doc, batch, args.reps)
            except ImportError as exc:
                print(f"| {bench.__name__[6:]} | not installed ({exc.name}) | | | |")
                break
            for r in rows:
                print(f"| {r['engine']} | {r['compile_ms']:.1f} | {r['median_us']:.0f} | {r['p90_us']:.0f} | "
                      f"{r['mean_us']:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
