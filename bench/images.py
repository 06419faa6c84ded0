"""Image generation benchmark: served endpoint vs in-process ONNX pipeline vs diffusers, same tiny checkpoint.

  .venv/bin/python bench/images.py [--repo build/model_repository] [--size 64x64 --steps 4 --requests 16]

Served = openai client -> adapter -> tritonserver (tiny-sdxl pipeline model) -> PNG/base64 back.
In-process = runtime.sdxl.SdxlPipeline on the same ONNX engines in this process (PNG bytes out).
Diffusers = StableDiffusionXLPipeline on the same tiny checkpoint (torch, fp32, CPU).
Every request makes one image; concurrency c runs c client threads. Target: served latency <= 1.15x in-process.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1.15


def run_block(call: Callable[[int], None], first: int, count: int, pool: ThreadPoolExecutor
              ) -> tuple[list[float], float]:
    """`count` calls on the pool's threads -> (per-call latencies, wall time)."""
    latencies: list[float] = []

    def timed(i: int) -> None:
        start = time.perf_counter()
        call(i)
        latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    list(pool.map(timed, range(first, first + count)))
    return latencies, time.perf_counter() - start


def compare(calls: dict[str, Callable[[int], None]], requests: int, concurrency: int, rounds: int) -> dict:
    """Interleave the pipelines in rounds so that they share the same background load (a shared CI box).
    Each pipeline keeps its own client threads throughout (torch/OpenMP pools are per calling thread)."""
    pools = {name: ThreadPoolExecutor(concurrency) for name in calls}
    for name, call in calls.items():
        run_block(call, 10_000, 2 * concurrency, pools[name])  # warm-up
    stats = {name: ([], 0.0) for name in calls}
    per_round = max(concurrency, requests // rounds)
    for r in range(rounds):
        for name, call in calls.items():
            latencies, wall = run_block(call, r * per_round, per_round, pools[name])
            stats[name] = (stats[name][0] + latencies, stats[name][1] + wall)
    for pool in pools.values():
        pool.shutdown()
    return {name: {"latency_ms": 1000 * statistics.mean(lat), "p50_ms": 1000 * statistics.median(lat),
                   "images_per_s": len(lat) / wall} for name, (lat, wall) in stats.items()}


def served(repo: Path, model: str, args, logs: Path) -> Callable[[int], None]:
    import openai

    from launcher.stack import Stack

    stack = Stack(repo, logs)
    served.processes = [stack]  # stopped by main()
    stack.start(300)
    client = openai.OpenAI(base_url=stack.adapter.base_url, api_key="unused", max_retries=0, timeout=600)
    extra = {"num_inference_steps": args.steps, "guidance_scale": args.guidance}

    def call(i: int) -> None:
        result = client.images.generate(model=model, prompt=f"a red fox {i}", size=args.size,
                                        response_format="b64_json", extra_body={**extra, "seed": i})
        assert result.data[0].b64_json

    return call


def in_process(repo: Path, model: str, args) -> Callable[[int], None]:
    from runtime.sdxl.config import GenerationRequest
    from runtime.sdxl.engines import ort_factory
    from runtime.sdxl.pipeline import SdxlPipeline

    pipeline = SdxlPipeline.from_dir(repo / model / "1", ort_factory())
    width, height = (int(v) for v in args.size.split("x"))

    def call(i: int) -> None:
        pipeline.generate_png(GenerationRequest(prompt=f"a red fox {i}", n=1, width=width, height=height,
                                                steps=args.steps, guidance=args.guidance, seed=i))

    return call


def with_diffusers(checkpoint: Path, args, concurrency: int) -> Callable[[int], None]:
    import queue

    import torch
    from diffusers import StableDiffusionXLPipeline

    # One pipeline per concurrent call: diffusers schedulers keep per-call state.
    pipes: queue.Queue = queue.Queue()
    for _ in range(concurrency):
        pipe = StableDiffusionXLPipeline.from_pretrained(checkpoint)
        pipe.set_progress_bar_config(disable=True)
        pipes.put(pipe)
    width, height = (int(v) for v in args.size.split("x"))

    def call(i: int) -> None:
        pipe = pipes.get()
        try:
            pipe(f"a red fox {i}", width=width, height=height, num_inference_steps=args.steps,
                 guidance_scale=args.guidance, generator=torch.Generator().manual_seed(i))
        finally:
            pipes.put(pipe)

    return call


def ensure_repo(repo: Path | None, scratch: Path) -> tuple[Path, Path]:
    """The repository to serve and the tiny checkpoint behind it (rebuilt from its seed when needed)."""
    from builders.sdxl import TINY_ID, build_demo
    from builders.sdxl.tiny import TINY_SEED, make_tiny_sdxl

    if repo is None or not (repo / TINY_ID).exists():
        repo = scratch / "repo"
        repo.mkdir()
        build_demo(repo, scratch / "work")
    return repo, make_tiny_sdxl(scratch / "checkpoint", TINY_SEED)


def render(rows: list[tuple[str, int, dict]], args, command: str, load: float) -> str:
    lines = [f"# Images benchmark ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
             f"Command: `{command}`", "",
             f"Model tiny-sdxl (same checkpoint everywhere), size {args.size}, {args.steps} steps, guidance "
             f"{args.guidance}, 1 image per request, {args.requests} requests per row in {args.rounds} interleaved "
             f"rounds; machine: {os.cpu_count()} CPUs, 1-min load average before the run {load:.2f}.", "",
             "| pipeline | concurrency | mean latency / image (ms) | p50 (ms) | images/s |", "|---|---|---|---|---|"]
    for name, c, r in rows:
        lines.append(f"| {name} | {c} | {r['latency_ms']:.1f} | {r['p50_ms']:.1f} | {r['images_per_s']:.2f} |")
    lines += ["", f"Served / in-process latency (target <= {TARGET}x):"]
    by = {(n, c): r for n, c, r in rows}
    for c in args.concurrency:
        ratio = by[("served", c)]["latency_ms"] / by[("in-process ONNX", c)]["latency_ms"]
        lines.append(f"- concurrency {c}: {ratio:.2f}x ({'meets' if ratio <= TARGET else 'misses'} the target)")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, help="model repository with tiny-sdxl (default: build one)")
    parser.add_argument("--size", default="64x64")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--guidance", type=float, default=5.0)
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds per concurrency")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "images.md")
    parser.add_argument("--append", action="store_true", help="add this run to --out instead of replacing it")
    parser.add_argument("--without-diffusers", action="store_true", help="served vs in-process only (quicker)")
    args = parser.parse_args()
    command = "python bench/images.py " + " ".join(sys.argv[1:])
    from builders.sdxl import TINY_ID

    load = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        repo, checkpoint = ensure_repo(args.repo, Path(tmp))
        try:
            calls = {"served": served(repo, TINY_ID, args, Path(tmp)),
                     "in-process ONNX": in_process(repo, TINY_ID, args)}
            for c in args.concurrency:
                if not args.without_diffusers:
                    calls["diffusers"] = with_diffusers(checkpoint, args, c)
                rows += [(name, c, r) for name, r in compare(calls, args.requests, c, args.rounds).items()]
        finally:
            for process in getattr(served, "processes", []):
                process.stop()
    rows.sort(key=lambda row: (list(calls).index(row[0]), row[1]))
    report = render(rows, args, command, load)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a" if args.append else "w") as f:
        f.write(("\n" if args.append else "") + report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
