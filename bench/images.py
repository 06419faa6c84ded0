"""Image generation benchmark: served endpoint vs in-process ONNX pipeline vs diffusers, same tiny checkpoint.

  HF_HUB_OFFLINE=1 .venv/bin/python bench/images.py [--repo build/model_repository] [--size 128x128 --steps 30]

Default work per image: SDXL's default 30 steps and guidance 5.0 at the tiny checkpoint's largest size (about
0.1-0.2 s per image here). The tiny model's own defaults (64x64, 4 steps: 12-20 ms) are a smoke test: there
the fixed few ms of any serving stack dominate (see bench/results/images.md for that run).

Sides, each driven from a process of its own (its own torch / ONNX Runtime thread settings, as when deployed):
- served: openai client -> adapter -> tritonserver (tiny-sdxl pipeline model) -> PNG/base64 back.
- served, raw HTTP: the same endpoint from a minimal keep-alive client (http.client + json): the endpoint
  without the openai SDK's own per-request work.
- Triton gRPC, no adapter: tritonclient (sync gRPC) straight to the pipeline model with the adapter's inputs:
  what tritonserver and the Python backend cost by themselves.
- in-process ONNX: runtime.sdxl.SdxlPipeline on the same ONNX files with the served model's engine settings
  (ort_threads, torch_threads from its config.pbtxt), PNG bytes out.
- diffusers: StableDiffusionXLPipeline on the same tiny checkpoint (torch defaults, fp32, CPU).
Every request makes one image; concurrency c = c client threads. The sides alternate in small blocks so that
they share the machine's background load. CPU per image counts the side's process and, for the served sides,
tritonserver + its stubs + the adapter. Target: served latency <= 1.15x in-process.
"""
from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from any directory

from adapter.paths import IMAGES_GENERATIONS  # noqa: E402
from bench.measure import cpu_seconds, group_cpu_seconds  # noqa: E402

TARGET = 1.15
Call = Callable[[int], None]


# -- the sides (built inside their worker process) --
def served_openai(base_url: str, model: str, size: str, steps: int, guidance: float, **_) -> Call:
    import openai  # noqa: PLC0415

    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=600)
    extra = {"num_inference_steps": steps, "guidance_scale": guidance}

    def call(i: int) -> None:
        result = client.images.generate(model=model, prompt=f"a red fox {i}", size=size,
                                        response_format="b64_json", extra_body={**extra, "seed": i})
        assert result.data[0].b64_json

    return call


def served_http(base_url: str, model: str, size: str, steps: int, guidance: float, **_) -> Call:
    url = urlsplit(base_url)
    local = threading.local()  # one keep-alive connection per client thread

    def call(i: int) -> None:
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
        body = json.dumps({"model": model, "prompt": f"a red fox {i}", "size": size, "seed": i,
                           "num_inference_steps": steps, "guidance_scale": guidance})
        local.conn.request("POST", IMAGES_GENERATIONS, body, {"Content-Type": "application/json"})
        response = local.conn.getresponse()
        assert response.status == 200 and json.loads(response.read())["data"][0]["b64_json"]

    return call


def triton_direct(grpc_url: str, model: str, size: str, steps: int, guidance: float, **_) -> Call:
    import tritonclient.grpc as grpcclient  # noqa: PLC0415

    from adapter.images.protocol import triton_inputs  # noqa: PLC0415
    from adapter.triton_client import infer_inputs  # noqa: PLC0415
    from runtime.sdxl.config import GenerationRequest  # noqa: PLC0415

    local = threading.local()  # one client (channel) per thread, like one HTTP connection per thread
    width, height = (int(v) for v in size.split("x"))

    def call(i: int) -> None:
        if not hasattr(local, "client"):
            local.client = grpcclient.InferenceServerClient(grpc_url)
        req = GenerationRequest(prompt=f"a red fox {i}", n=1, width=width, height=height, steps=steps,
                                guidance=guidance, seed=i)
        result = local.client.infer(model, infer_inputs(triton_inputs(req)))
        assert result.as_numpy("IMAGES").size == 1

    return call


def in_process(repo: str, model: str, size: str, steps: int, guidance: float, **_) -> Call:
    from builders.triton_config import get_parameters, load_config  # noqa: PLC0415
    from runtime.sdxl.config import GenerationRequest, ImageModelConfig  # noqa: PLC0415
    from runtime.sdxl.engines import ort_factory, set_torch_threads  # noqa: PLC0415
    from runtime.sdxl.pipeline import SdxlPipeline  # noqa: PLC0415

    # The served model's engine settings (same sessions, same threads): only the serving stack differs.
    config = ImageModelConfig.from_parameters(get_parameters(load_config(Path(repo) / model)))
    set_torch_threads(config.torch_threads)
    pipeline = SdxlPipeline.from_dir(Path(repo) / model / "1", ort_factory(config.ort_threads),
                                     config.force_zeros_for_empty_prompt)
    width, height = (int(v) for v in size.split("x"))

    def call(i: int) -> None:
        pipeline.generate_png(GenerationRequest(prompt=f"a red fox {i}", n=1, width=width, height=height,
                                                steps=steps, guidance=guidance, seed=i))

    return call


def with_diffusers(checkpoint: str, size: str, steps: int, guidance: float, copies: int, **_) -> Call:
    import queue  # noqa: PLC0415

    import torch  # noqa: PLC0415
    from diffusers import StableDiffusionXLPipeline  # noqa: PLC0415

    pipes: queue.Queue = queue.Queue()  # one pipeline per concurrent call: diffusers schedulers keep call state
    for _ in range(copies):
        pipe = StableDiffusionXLPipeline.from_pretrained(checkpoint)
        pipe.set_progress_bar_config(disable=True)
        pipes.put(pipe)
    width, height = (int(v) for v in size.split("x"))

    def call(i: int) -> None:
        pipe = pipes.get()
        try:
            pipe(f"a red fox {i}", width=width, height=height, num_inference_steps=steps, guidance_scale=guidance,
                 generator=torch.Generator().manual_seed(i))
        finally:
            pipes.put(pipe)

    return call


FACTORIES = {"served": served_openai, "served, raw HTTP": served_http, "Triton gRPC, no adapter": triton_direct,
             "in-process ONNX": in_process, "diffusers": with_diffusers}


# -- driving them --
def run_block(call: Call, first: int, count: int, pool: ThreadPoolExecutor) -> tuple[list[float], float]:
    """`count` calls on the pool's threads -> (per-call latencies, wall time)."""
    latencies: list[float] = []

    def timed(i: int) -> None:
        start = time.perf_counter()
        call(i)
        latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    list(pool.map(timed, range(first, first + count)))
    return latencies, time.perf_counter() - start


def side_worker(conn, name: str, options: dict) -> None:
    """Build the side, then run the blocks the driver asks for; persistent threads per concurrency (torch and
    OpenMP keep per-thread state)."""
    call = FACTORIES[name](**options)
    pools: dict[int, ThreadPoolExecutor] = {}
    conn.send("ready")
    while (job := conn.recv()) is not None:
        first, count, concurrency = job
        if concurrency not in pools:
            pools[concurrency] = ThreadPoolExecutor(concurrency)
        pool = pools[concurrency]
        cpu = cpu_seconds()
        latencies, wall = run_block(call, first, count, pool)
        conn.send((latencies, wall, cpu_seconds() - cpu))


class Side:
    def __init__(self, name: str, options: dict, process_groups: tuple[int, ...] = ()):
        context = mp.get_context("spawn")
        self.name, self.process_groups = name, process_groups
        self.conn, child = context.Pipe()
        self.process = context.Process(target=side_worker, args=(child, name, options), daemon=True)
        self.process.start()
        assert self.conn.recv() == "ready"

    def block(self, first: int, count: int, concurrency: int) -> tuple[list[float], float, float]:
        """(latencies, wall, CPU seconds of the side's process and its server processes)."""
        outside = group_cpu_seconds(self.process_groups)
        self.conn.send((first, count, concurrency))
        latencies, wall, cpu = self.conn.recv()
        return latencies, wall, cpu + group_cpu_seconds(self.process_groups) - outside

    def stop(self) -> None:
        self.conn.send(None)
        self.process.join(30)


def compare(sides: list[Side], requests: int, concurrency: int, block: int) -> dict[str, dict]:
    """Each side runs `block` x concurrency requests in turn until each has run `requests`: short blocks, because
    this kind of machine changes speed within seconds (a side must not get a fast or slow patch to itself)."""
    for side in sides:
        side.block(10_000, 2 * concurrency, concurrency)  # warm-up
    totals = {side.name: ([], 0.0, 0.0) for side in sides}
    per_round = block * concurrency
    for r in range(-(-requests // per_round)):
        for side in sides:
            latencies, wall, cpu = side.block(r * per_round, per_round, concurrency)
            lat, w, c = totals[side.name]
            totals[side.name] = (lat + latencies, w + wall, c + cpu)
    return {name: {"latency_ms": 1000 * statistics.mean(lat), "p50_ms": 1000 * statistics.median(lat),
                   "images_per_s": len(lat) / wall, "cpu_ms": 1000 * cpu / len(lat)}
            for name, (lat, wall, cpu) in totals.items()}


def ensure_repo(repo: Path | None, scratch: Path) -> tuple[Path, Path]:
    """The repository to serve and the tiny checkpoint behind it (rebuilt from its seed when needed)."""
    from builders.sdxl import TINY_ID, build_demo  # noqa: PLC0415
    from builders.sdxl.tiny import TINY_SEED, make_tiny_sdxl  # noqa: PLC0415

    if repo is None or not (repo / TINY_ID).exists():
        repo = scratch / "repo"
        repo.mkdir()
        build_demo(repo, scratch / "work")
    return repo.resolve(), make_tiny_sdxl(scratch / "checkpoint", TINY_SEED)


def render(rows: list[tuple[str, int, dict]], args, command: str, load: float) -> str:
    lines = [f"# Images benchmark ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
             f"Command: `{command}`", "",
             f"Model tiny-sdxl (same checkpoint everywhere), size {args.size}, {args.steps} steps, guidance "
             f"{args.guidance}, 1 image per request, at least {args.requests} requests per row in interleaved blocks "
             f"of {args.block} x concurrency; machine: {os.cpu_count()} CPUs, 1-min load average before the run {load:.2f}.", "",
             "| pipeline | concurrency | mean latency / image (ms) | p50 (ms) | images/s | CPU ms / image |",
             "|---|---|---|---|---|---|"]
    for name, c, r in rows:
        lines.append(f"| {name} | {c} | {r['latency_ms']:.1f} | {r['p50_ms']:.1f} | {r['images_per_s']:.2f} | "
                     f"{r['cpu_ms']:.1f} |")
    by = {(n, c): r for n, c, r in rows}
    lines += ["", "Against in-process ONNX at the same concurrency (latency by mean / by p50; extra ms and extra CPU ms "
              "per image):", "", "| side | concurrency | latency ratio | extra ms / image | extra CPU ms / image |",
              "|---|---|---|---|---|"]
    for name in [n for n in FACTORIES if n not in ("in-process ONNX", "diffusers")]:
        for c in args.concurrency:
            if (name, c) in by:
                s, base = by[(name, c)], by[("in-process ONNX", c)]
                lines.append(f"| {name} | {c} | {s['latency_ms'] / base['latency_ms']:.2f}x / "
                             f"{s['p50_ms'] / base['p50_ms']:.2f}x | {s['latency_ms'] - base['latency_ms']:+.1f} | "
                             f"{s['cpu_ms'] - base['cpu_ms']:+.1f} |")
    lines += ["", f"Target (served, openai client, by mean) <= {TARGET}x:"]
    for c in args.concurrency:
        ratio = by[("served", c)]["latency_ms"] / by[("in-process ONNX", c)]["latency_ms"]
        lines.append(f"- concurrency {c}: {ratio:.2f}x ({'meets' if ratio <= TARGET else 'misses'} the target)")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, help="model repository with tiny-sdxl (default: build one)")
    parser.add_argument("--size", default="128x128")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--guidance", type=float, default=5.0)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--block", type=int, default=2, help="requests per interleaved block, x concurrency")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "images.md")
    parser.add_argument("--append", action="store_true", help="add this run to --out instead of replacing it")
    parser.add_argument("--without-diffusers", action="store_true", help="no diffusers side (quicker)")
    args = parser.parse_args()
    command = "python bench/images.py " + " ".join(sys.argv[1:])
    from builders.sdxl import TINY_ID  # noqa: PLC0415
    from launcher.stack import Stack  # noqa: PLC0415

    load = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        repo, checkpoint = ensure_repo(args.repo, Path(tmp))
        stack = Stack(repo, Path(tmp)).start(300)
        sides: list[Side] = []
        try:
            work = {"model": TINY_ID, "size": args.size, "steps": args.steps, "guidance": args.guidance}
            groups = (stack.triton.proc.pid, stack.adapter.proc.pid)  # each runs in its own process group
            sides = [Side("served", {**work, "base_url": stack.adapter.base_url}, groups),
                     Side("served, raw HTTP", {**work, "base_url": stack.adapter.base_url}, groups),
                     Side("Triton gRPC, no adapter", {**work, "grpc_url": stack.triton.grpc_url}, groups[:1]),
                     Side("in-process ONNX", {**work, "repo": str(repo)})]
            if not args.without_diffusers:
                sides.append(Side("diffusers", {**work, "checkpoint": str(checkpoint),
                                                "copies": max(args.concurrency)}))
            for c in args.concurrency:
                rows += [(name, c, r) for name, r in compare(sides, args.requests, c, args.block).items()]
                print(f"concurrency {c} done", flush=True)
        finally:
            for side in sides:
                side.stop()
            stack.stop()
    rows.sort(key=lambda row: (list(FACTORIES).index(row[0]), row[1]))
    report = render(rows, args, command, load)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a" if args.append else "w") as f:
        f.write(("\n" if args.append else "") + report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
