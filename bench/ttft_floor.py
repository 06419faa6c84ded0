"""Time to first token at c=1: how much is the serving stack's floor, how much the engine, how much the rest.

  HF_HUB_OFFLINE=1 .venv/bin/python bench/ttft_floor.py [--requests 60] [--rounds 3] [--out bench/results/ttft_floor.md]

One stack (tritonserver + adapter) serves the demo `tiny-llama-3` and `instant` (bench/instant_generator.py: the
generator's contract answered at once, no tokenizer, no engine). Per request, in rotated order:
  served    SSE chat completion on tiny-llama-3 through the adapter, as bench/llm.py's served stream side measures it
  in-proc   the same chat in bench/llm.py's in-process engine loop (parse, template, tokenize, prefill, sample)
  floor     the same SSE chat on `instant`: HTTP, the adapter, gRPC, Triton and the Python-backend crossing
  floor hot the floor again right after a floor request: the same code on warm caches and busy cores (floor -
            floor hot is what running after other work, or after a pause, costs on this machine)
  grpc      `instant` straight over gRPC (the adapter's TritonClient.stream): Triton and the Python backend only
  health    GET /health: an HTTP round trip through the adapter's middlewares
The HTTP kinds share one keep-alive connection pool (bench/llm.py's HttpClient), as an OpenAI SDK client does.
Every request follows another kind's request: this is the time to first token after the stack idled (bench/llm.py
measures closed loops, 8 requests per side in a row at c=1).
The target is served - in-proc <= 5 ms (p50). served - in-proc - floor is what the real model costs the
served path beyond its own work and the floor (thread hand-offs in the stub, contention on the cores).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from any directory

from adapter.paths import HEALTH  # noqa: E402
from bench import llm  # noqa: E402
from builders.llm import DEMO_ID  # noqa: E402
from builders.llm.tiny import TinySpec  # noqa: E402

INSTANT = "instant"
KINDS = ("served", "in-proc", "floor", "floor hot", "grpc", "health")


def build(work: Path) -> Path:
    repo = work / "repo"
    llm.build_generator(work, repo, DEMO_ID, TinySpec())
    instant = repo / INSTANT
    (instant / "1").mkdir(parents=True, exist_ok=True)
    config = (repo / DEMO_ID / "config.pbtxt").read_text()
    (instant / "config.pbtxt").write_text(config.replace(f'name: "{DEMO_ID}"', f'name: "{INSTANT}"', 1))
    shutil.copy2(Path(__file__).with_name("instant_generator.py"), instant / "1" / "model.py")
    return repo


async def grpc_first(triton, text: str, max_tokens: int) -> float:
    payload = llm._body(text, max_tokens)  # the in-process side's request (streamed: the contract's default)
    start, first = time.perf_counter(), None
    async for _ in triton.stream(INSTANT, {"request": np.array([payload.encode()], dtype=np.object_)}):
        first = first or time.perf_counter() - start
    return first


async def health(session) -> float:
    start = time.perf_counter()
    async with session.get(HEALTH) as resp:
        await resp.read()
    return time.perf_counter() - start


def measure(http, triton, version_dir: Path, chats: list[tuple[str, int]], inproc: ProcessPoolExecutor) -> dict:
    run = {
        "served": lambda chat: http.served(DEMO_ID, [chat], 1, True)["ttft_p50"] / 1e3,
        "in-proc": lambda chat: inproc.submit(llm.bench_inproc, version_dir, [chat], 1).result()["ttft_p50"] / 1e3,
        "floor": lambda chat: http.served(INSTANT, [chat], 1, True)["ttft_p50"] / 1e3,
        "floor hot": lambda chat: [http.served(INSTANT, [chat], 1, True) for _ in range(2)][1]["ttft_p50"] / 1e3,
        "grpc": lambda chat: http.loop.run_until_complete(grpc_first(triton, *chat)),
        "health": lambda chat: http.loop.run_until_complete(health(http.session)),
    }
    out: dict[str, list[float]] = {k: [] for k in KINDS}
    for i, chat in enumerate(chats):
        for kind in KINDS[i % len(KINDS):] + KINDS[:i % len(KINDS)]:
            out[kind].append(1e3 * run[kind](chat))
    return {k: statistics.median(v) for k, v in out.items()}


def report(rounds: list[dict], command: str) -> str:
    derived = [("served - in-proc (goal <= 5)", lambda r: r["served"] - r["in-proc"]),
               ("served - in-proc - floor", lambda r: r["served"] - r["in-proc"] - r["floor"]),
               ("floor - grpc (the adapter's share of the floor)", lambda r: r["floor"] - r["grpc"]),
               ("floor - floor hot (what cold caches and idle cores cost the floor)", lambda r: r["floor"] - r["floor hot"])]
    lines = [f"# Time to first token at c=1: floor, engine, rest\n\nCommand: `{command}` "
             f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n",
             "p50 in ms per round (each round: its requests, the kinds in rotated order), and the median of rounds.\n",
             "| measure | " + " | ".join(f"round {i + 1}" for i in range(len(rounds))) + " | median |",
             "|---|" + "---|" * (len(rounds) + 1)]
    rows = [(k, lambda r, k=k: r[k]) for k in KINDS] + derived
    for name, get in rows:
        values = [get(r) for r in rounds]
        lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in values) + f" | {statistics.median(values):.2f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "bench-floor")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ttft_floor.md")
    parser.add_argument("--requests", type=int, default=60, help="requests per kind and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=64, help="mean completion tokens per request")
    args = parser.parse_args()

    from launcher.stack import Stack  # noqa: PLC0415

    repo = build(args.work)
    version_dir = repo / DEMO_ID / "1"
    inproc = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    rounds = []
    with Stack(repo, args.work / "logs") as stack:
        from adapter.triton_client import TritonClient  # noqa: PLC0415

        async def grpc_client() -> TritonClient:  # gRPC's aio channel binds to the loop it is made in
            return TritonClient(stack.triton.grpc_url, 30)

        http = llm.HttpClient(stack.adapter.url)  # bench/llm.py's served client: one keep-alive pool
        triton = http.loop.run_until_complete(grpc_client())
        inproc.submit(llm.bench_inproc, version_dir, llm.prompts(2, 4), 1).result()  # warm-up
        measure(http, triton, version_dir, llm.prompts(10, 8, seed=99), inproc)
        for r in range(args.rounds):
            chats = llm.prompts(args.requests, args.tokens, seed=r)
            rounds.append(measure(http, triton, version_dir, chats, inproc))
            print(json.dumps(rounds[-1]), flush=True)
        http.loop.run_until_complete(triton.close())
        http.close()
    inproc.shutdown()
    text = report(rounds, "HF_HUB_OFFLINE=1 .venv/bin/python bench/ttft_floor.py " + " ".join(sys.argv[1:]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
