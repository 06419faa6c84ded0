"""Sampling microbenchmark: the plain one-row-at-a-time sampler (bench/reference_sampler.py) vs the batched
one (runtime.llm.sampling.sample_rows), 32 rows per decode step, interleaved in one process.

  .venv/bin/python bench/sampling.py [--rows 32] [--steps 30] [--repeats 5] [--spread 6] [--out bench/results/sampling.md]

Logits: standard normal x --spread (6: the demo model's logit spread, a peaked next-token distribution); each
step gets a fresh copy made outside the timed region (the engine hands the sampler a fresh array). Before
timing, 48 warm-up steps give the penalty rows 48 seen tokens. Reported: median over repeats of us per row per
step, by the wall clock and by this process's CPU time (the machine is shared: under load the wall clock
counts other processes' turns too). Target at 128,256 ids: <= 50 us/row for temperature, top_p 0.9 and penalties.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from any directory

from bench import reference_sampler  # noqa: E402
from runtime.llm.protocol import SamplingParams  # noqa: E402
from runtime.llm.sampling import Sampler, sample_rows  # noqa: E402

VOCABS = (2012, 128256)
KINDS = {
    "temperature 1": {"temperature": 1.0},
    "temperature 0.8 + top_p 0.9": {"temperature": 0.8, "top_p": 0.9},
    "presence penalty": {"temperature": 1.0, "presence_penalty": 0.5},
    "top_k 50": {"temperature": 1.0, "top_k": 50},  # before: no top_k, it samples at temperature 1
    "logprobs, top_logprobs 5": {"temperature": 1.0, "logprobs": True, "top_logprobs": 5},
}
WARMUP = 48


def before(samplers, logits: np.ndarray) -> None:
    for s, row in zip(samplers, logits):
        s.sample(row)


def after(samplers, logits: np.ndarray) -> None:
    sample_rows(logits, samplers)


def time_side(side, samplers, pool: list[np.ndarray], steps: int) -> tuple[float, float]:
    """(wall, CPU) us per row per step over `steps` steps (copies made before the clocks start)."""
    batches = [pool[i % len(pool)].copy() for i in range(steps)]
    wall, cpu = time.perf_counter(), time.process_time()
    for logits in batches:
        side(samplers, logits)
    per = 1e6 / steps / len(samplers)
    return (time.perf_counter() - wall) * per, (time.process_time() - cpu) * per


def measure(vocab: int, kind: dict, rows: int, steps: int, repeats: int, spread: float) -> dict[str, float]:
    rng = np.random.default_rng(0)
    pool = [(rng.standard_normal((rows, vocab)) * spread).astype(np.float32) for _ in range(4)]
    params = SamplingParams.from_json({**kind, "seed": 1}, vocab)
    old = [reference_sampler.Sampler(params, vocab, i) for i in range(rows)]
    new = [Sampler(params, vocab, i) for i in range(rows)]
    for i in range(WARMUP if kind.get("presence_penalty") else 1):
        before(old, pool[i % 4])
        after(new, pool[i % 4].copy())
    runs: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
    for _ in range(repeats):  # interleaved: the machine is shared, load drifts
        runs["before"].append(time_side(before, old, pool, max(2, steps // (10 if vocab > 10000 else 1))))
        runs["after"].append(time_side(after, new, pool, steps))
    return {f"{side} {clock}": statistics.median(r[k] for r in runs[side])
            for side in runs for k, clock in enumerate(("wall", "cpu"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--spread", type=float, default=6.0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    lines = [f"us per row per step, {args.rows} rows, median of {args.repeats} interleaved repeats "
             f"(logits: normal x {args.spread}); wall clock and this process's CPU time", "",
             "| vocabulary | sampling | before wall | after wall | speed-up | before CPU | after CPU | speed-up |",
             "|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for vocab in VOCABS:
        for name, kind in KINDS.items():
            t = measure(vocab, kind, args.rows, args.steps, args.repeats, args.spread)
            line = (f"| {vocab:,} | {name} | {t['before wall']:,.0f} | {t['after wall']:,.0f} | "
                    f"{t['before wall'] / t['after wall']:.1f}x | {t['before cpu']:,.0f} | {t['after cpu']:,.0f} | "
                    f"{t['before cpu'] / t['after cpu']:.1f}x |")
            print(line, flush=True)
            lines.append(line)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
