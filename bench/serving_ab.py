"""Serving-path A/B: several complete stacks (`launcher serve`) side by side, one interleaved run, the same
streamed chat requests to each; output tok/s, TTFT, ITL and the CPU each stack spent per output token.

  .venv/bin/python bench/serving_ab.py --variant '{"name": "new"}' \
      --variant '{"name": "window-0", "params": {"stream_interval_ms": "0"}}' \
      --variant '{"name": "main", "python": "/tmp/main-venv/bin/python", "repo": "/tmp/main/build/model_repository"}' \
      [--model tiny-llama-3] [--concurrency 32 128] [--tokens 64] [--rounds 3] [--json]

A variant: "name"; "python" (an interpreter whose venv has the tree to run, default this one) and "tree" (that
tree: its model.py template replaces the built one); "repo" (the model repository to copy the model from,
default build/model_repository); "params" (config.pbtxt parameters of the model to change); "env" (adapter
environment, e.g. ADAPTER_WORKERS). Only the benchmarked model is served.
Each round sends 2c requests to every variant in rotated order (the machine is shared: load drifts alike).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.llm import HttpClient, prompts  # noqa: E402
from bench.measure import tree_cpu_seconds  # noqa: E402
from builders.llm import DEMO_ID  # noqa: E402
from builders.triton_config import load_config, set_parameters, write_model  # noqa: E402
from launcher.process import ManagedProcess, free_port, http_ok  # noqa: E402


class Variant(ManagedProcess):
    """One `launcher serve` with its own copy of the model (parameters changed) on free ports."""

    def __init__(self, spec: dict, model: str, work: Path):
        self.spec, self.port = spec, free_port()
        repo = work / spec["name"] / "repo"
        shutil.rmtree(repo, ignore_errors=True)
        source = Path(spec.get("repo", ROOT / "build" / "model_repository")) / model
        shutil.copytree(source, repo / model, symlinks=True)
        config = load_config(repo / model)
        set_parameters(config, **spec.get("params", {}))
        write_model(repo, config)
        if "tree" in spec:
            shutil.copy2(Path(spec["tree"]) / "model_repository" / "llm_generator" / "1" / "model.py",
                         repo / model / "1" / "model.py")
        python = spec.get("python", sys.executable)
        super().__init__([python, "-m", "launcher", "serve", "--model-repository", str(repo), "--port",
                          str(self.port), "--log-dir", str(work / spec["name"] / "logs")],
                         work / spec["name"] / "serve.log", env={**os.environ, **spec.get("env", {})})
        self.name = spec["name"]
        self.client: HttpClient | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu(self) -> dict[str, float]:
        return tree_cpu_seconds(self.proc.pid)


def run_round(variants: list[Variant], model: str, chats: list, c: int, shift: int) -> dict[str, dict]:
    out = {}
    for v in variants[shift:] + variants[:shift]:
        before = v.cpu()
        r = v.client.served(model, chats, c, True)
        after = v.cpu()
        r["cpu"] = {name: after[name] - before.get(name, 0.0) for name in after}
        r["cpu_s"] = sum(r["cpu"].values())
        out[v.name] = r
    return out


def summary(rows: list[dict]) -> dict:
    tokens, wall, cpu = (sum(r[k] for r in rows) for k in ("tokens", "wall", "cpu_s"))
    names = {name for r in rows for name in r["cpu"]}
    return {"tok_s": tokens / wall, "cpu_us_tok": 1e6 * cpu / tokens,
            "cpu_us_tok_by_process": {n: round(1e6 * sum(r["cpu"].get(n, 0.0) for r in rows) / tokens) for n in names},
            **{k: statistics.median(r[k] for r in rows) for k in ("ttft_p50", "itl_p50", "itl_p99")},
            "tok_s_rounds": [round(r["tokens"] / r["wall"]) for r in rows]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", type=json.loads, required=True)
    parser.add_argument("--model", default=DEMO_ID)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "serving-ab")
    args = parser.parse_args()
    variants = [Variant(spec, args.model, args.work) for spec in args.variant]
    load = os.getloadavg()[0]
    try:
        for v in variants:
            v.start()
        for v in variants:
            v.wait_until(lambda v=v: http_ok(f"{v.url}/health/ready"), 300)
            v.client = HttpClient(v.url)
            v.client.served(args.model, prompts(4, 8), 2, True)  # warm-up
        for c in args.concurrency:
            per: dict[str, list[dict]] = {v.name: [] for v in variants}
            for i in range(args.rounds):
                for name, r in run_round(variants, args.model, prompts(2 * c, args.tokens, seed=100 * c + i), c,
                                         i % len(variants)).items():
                    per[name].append(r)
            for name, rows in per.items():
                print(json.dumps({"variant": name, "c": c, **summary(rows)}), flush=True)
    finally:
        for v in variants:
            if v.client is not None:
                v.client.close()
            v.stop()
    print(f"# load average (1 min): {load:.1f} at start, {os.getloadavg()[0]:.1f} at end; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
