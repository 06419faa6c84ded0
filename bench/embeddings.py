"""Embeddings benchmark: served /v1/embeddings vs in-process ONNX Runtime vs sentence-transformers, one process.

  HF_HUB_OFFLINE=1 .venv/bin/python bench/embeddings.py [--repo build/model_repository] [--out FILE]

Same machine, same sentences, same 32-sentence requests at concurrency 1, 8, 32 (c client threads); the sides
alternate inside each concurrency so that load from other processes hits them alike. Besides sentences/s and
latency it reports sentences per CPU-second (this process + tritonserver, its stubs and the adapter for the
served side), which stays comparable when other work shares the CPU.
Served = openai SDK (base64, its default) -> adapter -> tritonserver ensemble (tokenizer -> ORT encoder with
dynamic batching). In-process ORT = the same tokenizer and ONNX file in this process, one session.run per
request (and, as a fourth row, with the served engine's length-sorted chunking).
sentence-transformers = SentenceTransformer.encode on the same checkpoint (torch, CPU).
Targets at concurrency 8: served >= 0.9x in-process ORT and >= 1.0x sentence-transformers (sentences/s).
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from any directory

from bench.measure import cpu_seconds  # noqa: E402
from builders.embeddings import DEMO_MODEL_ID, demo_checkpoint  # noqa: E402
from builders.embeddings.repository import internal_names  # noqa: E402

BATCH = 32
WORDS = ("the a of model server request latency token vector search query document river mountain quantum "
         "embedding batch fast slow green bright under over seven cities language music history science "
         "Triton engine cosine sentence paragraph meaning similar different weather coffee morning").split()


def sentences(n: int, seed: int = 0) -> list[str]:
    """Deterministic sentences of 4..30 words (about 6..40 tokens), a spread like real short documents."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 30))).capitalize() + "." for _ in range(n)]


def requests_for(concurrency: int) -> int:
    return max(8, 3 * concurrency if concurrency <= 8 else 2 * concurrency)


def run_round(call: Callable[[list[str]], int], batches: list[list[str]], concurrency: int) -> tuple[float, list]:
    """Wall seconds and per-request latencies of `batches` sent by `concurrency` client threads."""
    latencies: list[float] = []

    def timed(batch: list[str]) -> None:
        start = time.perf_counter()
        assert call(batch) == len(batch)
        latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(timed, batches))
    return time.perf_counter() - start, latencies


def summarize(sentences: int, wall: float, cpu: float, latencies: list[float]) -> dict:
    lat = sorted(latencies)
    return {"sent_per_s": sentences / wall, "sent_per_cpu_s": sentences / cpu,
            "p50_ms": 1000 * statistics.median(lat),
            "p99_ms": 1000 * lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]}


def measure_interleaved(sides: dict, batches: list[list[str]], concurrency: int, rounds: int,
                        groups: dict[str, tuple[int, ...]]) -> dict:
    """Each side runs the same batches in `rounds` slices, sides alternating (order rotated every slice), so
    that load from other processes on a shared machine falls on all sides alike."""
    names = list(sides)
    walls = {n: 0.0 for n in names}
    cpus = {n: 0.0 for n in names}
    lats: dict[str, list[float]] = {n: [] for n in names}
    for name in names:  # warm-up
        sides[name](batches[0])
    for r in range(rounds):
        part = batches[r::rounds]
        for name in names[r % len(names):] + names[:r % len(names)]:
            cpu_before = cpu_seconds(groups.get(name, ()))
            wall, latencies = run_round(sides[name], part, concurrency)
            cpus[name] += cpu_seconds(groups.get(name, ())) - cpu_before
            walls[name] += wall
            lats[name].extend(latencies)
    total = sum(map(len, batches))
    return {n: summarize(total, walls[n], cpus[n], lats[n]) for n in names}


class Served:
    def __init__(self, repo: Path, model: str, logs: Path):
        import openai  # noqa: PLC0415

        from launcher.stack import Stack  # noqa: PLC0415

        self.model = model
        self.stack = Stack(repo, logs).start(300)
        self.triton, self.adapter = self.stack.triton, self.stack.adapter
        self.client = openai.OpenAI(base_url=self.adapter.base_url, api_key="unused", max_retries=0, timeout=600)

    def __call__(self, batch: list[str]) -> int:
        return len(self.client.embeddings.create(model=self.model, input=batch).data)

    def encoder_stats(self) -> tuple[int, int]:
        """(requests that reached the encoder, engine executions): their ratio is the batcher's merge factor."""
        import tritonclient.grpc as grpcclient  # noqa: PLC0415

        client = grpcclient.InferenceServerClient(self.triton.grpc_url)
        stats = client.get_inference_statistics(internal_names(self.model)[1], as_json=True)["model_stats"][0]
        client.close()
        return int(stats["inference_stats"]["success"].get("count", 0)), int(stats.get("execution_count", 0))

    def process_groups(self) -> tuple[int, ...]:
        return (self.triton.proc.pid, self.adapter.proc.pid)  # each runs in its own session / process group

    def stop(self) -> None:
        self.stack.stop()


def in_process_ort(repo: Path, model: str) -> dict[str, Callable[[list[str]], int]]:
    """The served model's tokenizer and ONNX file in this process, with the served engine's threads and pooling:
    the plain way (one call per request, padded to its longest row) and with the served model's length-sorted
    chunking, which separates what chunking gains from what serving costs."""
    from builders.triton_config import get_parameters, load_config  # noqa: PLC0415
    from runtime.embeddings.batching import TokenBlock, encode_blocks  # noqa: PLC0415
    from runtime.embeddings.params import EncoderParams, TokenizerParams  # noqa: PLC0415
    from runtime.embeddings.pooling import pool  # noqa: PLC0415
    from runtime.embeddings.session import OrtEncoderSession  # noqa: PLC0415
    from runtime.embeddings.tokenization import EmbeddingTokenizer  # noqa: PLC0415

    tok_name, enc_name = internal_names(model)

    def params(name: str) -> dict[str, str]:
        return get_parameters(load_config(repo / name))

    enc = EncoderParams.from_parameters(params(enc_name))
    tokenizer = EmbeddingTokenizer(repo / tok_name / "1" / "tokenizer",
                                   TokenizerParams.from_parameters(params(tok_name)).max_input_tokens)
    session = OrtEncoderSession(repo / enc_name / "1" / enc.engine_file, enc.ort)

    def plain(batch: list[str]) -> int:
        tokens = tokenizer.encode_texts(batch, truncate=True)
        return len(pool(session.run(tokens.input_ids, tokens.attention_mask), tokens.attention_mask, enc.pooling))

    def chunked(batch: list[str]) -> int:
        tokens = tokenizer.encode_texts(batch, truncate=True)
        block = TokenBlock(tokens.input_ids, tokens.attention_mask)
        return len(encode_blocks([block], session, enc.pooling, enc.max_batch_tokens)[0])

    return {"in-process ORT": plain, "in-process ORT, sorted chunks": chunked}


def sentence_transformers(checkpoint: Path) -> Callable[[list[str]], int]:
    from sentence_transformers import SentenceTransformer  # noqa: PLC0415

    model = SentenceTransformer(str(checkpoint), device="cpu")
    return lambda batch: len(model.encode(batch, batch_size=BATCH))


def table(results: dict, merges: dict, concurrencies: list[int]) -> str:
    lines = ["| concurrency | side | sentences/s | p50 ms | p99 ms | vs in-process ORT | vs sentence-transformers "
             "| sentences per CPU-second | CPU efficiency vs in-process ORT |", "|---|---|---|---|---|---|---|---|---|"]
    for c in concurrencies:
        ort_rate = results[(c, "in-process ORT")]["sent_per_s"]
        ort_eff = results[(c, "in-process ORT")]["sent_per_cpu_s"]
        st_rate = results[(c, "sentence-transformers")]["sent_per_s"]
        for side in ("served", "in-process ORT", "in-process ORT, sorted chunks", "sentence-transformers"):
            r = results[(c, side)]
            lines.append(f"| {c} | {side} | {r['sent_per_s']:.1f} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | "
                         f"{r['sent_per_s'] / ort_rate:.2f}x | {r['sent_per_s'] / st_rate:.2f}x | "
                         f"{r['sent_per_cpu_s']:.1f} | {r['sent_per_cpu_s'] / ort_eff:.2f}x |")
    best_ort = max(results[(c, "in-process ORT")]["sent_per_s"] for c in concurrencies)
    best_st = max(results[(c, "sentence-transformers")]["sent_per_s"] for c in concurrencies)
    lines.append("")
    lines += [f"- served, concurrency {c}: {results[(c, 'served')]['sent_per_s'] / best_ort:.2f}x the best in-process "
              f"ORT rate at any concurrency ({best_ort:.1f}/s), {results[(c, 'served')]['sent_per_s'] / best_st:.2f}x "
              f"the best sentence-transformers rate ({best_st:.1f}/s)" for c in concurrencies]
    lines += [f"- served, concurrency {c}: {req} requests reached the encoder in {ex} engine executions "
              f"({req / max(ex, 1):.1f} requests merged per execution)" for c, (req, ex) in merges.items()]
    return "\n".join(lines)


def ensure_repo(repo: Path | None, tmp: Path) -> Path:
    if repo is not None and (repo / DEMO_MODEL_ID).exists():
        return repo
    from builders.demo import build_demo  # noqa: PLC0415

    build_demo(tmp / "repo", tmp / "work", only=["embeddings"])
    return tmp / "repo"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=ROOT / "build" / "model_repository")
    parser.add_argument("--model", default=DEMO_MODEL_ID)
    parser.add_argument("--checkpoint", type=Path, default=None, help="for sentence-transformers (default: demo)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--rounds", type=int, default=2, help="slices per concurrency, sides alternating")
    parser.add_argument("--out", type=Path, help="also write the table (markdown) here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = ensure_repo(args.repo.resolve(), Path(tmp))
        served = Served(repo, args.model, Path(tmp) / "logs")
        try:
            sides = {"served": served, **in_process_ort(repo, args.model),
                     "sentence-transformers": sentence_transformers(args.checkpoint or demo_checkpoint())}
            pool = sentences(BATCH * max(requests_for(c) for c in args.concurrency))
            results, merges = {}, {}
            for c in args.concurrency:
                batches = [pool[i * BATCH:(i + 1) * BATCH] for i in range(requests_for(c))]
                before = served.encoder_stats()  # only the served side reaches Triton (its warm-up included)
                measured = measure_interleaved(sides, batches, c, args.rounds,
                                               {"served": served.process_groups()})
                after = served.encoder_stats()
                merges[c] = (after[0] - before[0], after[1] - before[1])
                for name, r in measured.items():
                    results[(c, name)] = r
                    print(f"c={c} {name}: {r}", flush=True)
        finally:
            served.stop()
    report = table(results, merges, args.concurrency)
    print(report)
    if args.out:
        args.out.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
