"""What this machine allows bench-llama's engine: the ceilings behind bench/peers.py's targets. Not part of `make test`.

  HF_HUB_OFFLINE=1 .venv/bin/python bench/engine_bounds.py   (after bench/peers.py has built build/peers)

Measured here, 2 threads each, medians: the fp32 matmul ceiling (PyTorch 2048^3, and ONNX Runtime's MLAS on the
LM head's shape at batch 32), the memory read bandwidth, ONNX Runtime's GroupQueryAttention alone on one layer's
fp32 cache (its bytes per second), and our engine's batch-32 decode step and prompt prefill on build/peers/ours-fp32.
From them: the decode time a ~1,430-token context must add at batch 8 (the KV bytes one step reads, at the measured
bandwidth), and the served c=32 throughput the engine allows with no serving cost at all (every output token a
row of a full batch-32 step, every prompt token prefilled at the measured rate).
"""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.peers import THREADS, WORK, prompt_ids  # noqa: E402

CONTEXT = 1430
PROMPT_TOKENS = 61  # bench/llm.py's c=32 chats through the Llama-3 template: mean 60.9 tokens
OUTPUT_TOKENS = 64.6  # and their mean max_tokens


def median_s(run, repeats: int = 9) -> float:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def options() -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


def torch_gemm_gflops() -> float:
    import torch  # noqa: PLC0415

    torch.set_num_threads(THREADS)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    return 2 * 2048 ** 3 / median_s(lambda: a @ b) / 1e9


def read_gb_s() -> float:
    import torch  # noqa: PLC0415

    torch.set_num_threads(THREADS)
    data = torch.ones(256 * 1024 * 1024)
    return data.numel() * 4 / median_s(data.sum, 5) / 1e9


def head_gflops(hidden: int, vocab: int, rows: int = 32) -> float:
    """MLAS on the LM head's shape, its weight a prepacked initializer as in the engine's graph."""
    weight = (np.random.default_rng(0).standard_normal((hidden, vocab), np.float32) * 0.02)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "head",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [rows, hidden])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [rows, vocab])],
        [numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with tempfile.TemporaryDirectory() as folder:  # its weights in a file (mapped, as the engine's are)
        path = Path(folder) / "head.onnx"
        onnx.save(model, path, save_as_external_data=True, location="head.data")
        session = ort.InferenceSession(path, options(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((rows, hidden), np.float32)
    return 2 * rows * hidden * vocab / median_s(lambda: session.run(None, {"x": x})) / 1e9


def attention_ms(rows: int, context: int, heads: int, kv_heads: int, head_dim: int, max_len: int) -> float:
    """One GroupQueryAttention decode step over `rows` sequences of `context` cached positions, its fp32 cache
    bound as both past and present (written in place), as the engine runs it."""
    f = TensorProto.FLOAT
    node = helper.make_node("GroupQueryAttention",
                            ["q", "k", "v", "past_key", "past_value", "seqlens_k", "total_sequence_length"],
                            ["out", "present_key", "present_value"], domain="com.microsoft",
                            num_heads=heads, kv_num_heads=kv_heads)
    cache = [rows, kv_heads, max_len, head_dim]
    graph = helper.make_graph([node], "gqa", [
        helper.make_tensor_value_info("q", f, [rows, 1, heads * head_dim]),
        helper.make_tensor_value_info("k", f, [rows, 1, kv_heads * head_dim]),
        helper.make_tensor_value_info("v", f, [rows, 1, kv_heads * head_dim]),
        helper.make_tensor_value_info("past_key", f, cache), helper.make_tensor_value_info("past_value", f, cache),
        helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, [rows]),
        helper.make_tensor_value_info("total_sequence_length", TensorProto.INT32, [])],
        [helper.make_tensor_value_info("out", f, [rows, 1, heads * head_dim]),
         helper.make_tensor_value_info("present_key", f, cache),
         helper.make_tensor_value_info("present_value", f, cache)])
    opsets = [helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    session = ort.InferenceSession(model.SerializeToString(), options(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(2)
    keys, values = (ort.OrtValue.ortvalue_from_numpy(rng.standard_normal(cache, np.float32)) for _ in range(2))
    binding = session.io_binding()
    for name, shape in (("q", heads), ("k", kv_heads), ("v", kv_heads)):
        binding.bind_cpu_input(name, rng.standard_normal((rows, 1, shape * head_dim), np.float32))
    binding.bind_cpu_input("seqlens_k", np.full(rows, context, np.int32))
    binding.bind_cpu_input("total_sequence_length", np.array(context + 1, np.int32))
    for past, present, buffer in (("past_key", "present_key", keys), ("past_value", "present_value", values)):
        binding.bind_ortvalue_input(past, buffer)
        binding.bind_ortvalue_output(present, buffer)
    binding.bind_output("out")
    return 1e3 * median_s(lambda: session.run_with_iobinding(binding), 15)


def engine_ms(path: Path, batch: int = 32) -> dict:
    """Our served engine's settings (no spinning): a full batch's decode step at context ~60, and a prompt's
    prefill without the head (its last token rides in the next decode step), per token."""
    from runtime.llm.slot_session import SlotSession  # noqa: PLC0415
    from runtime.memory import bound_allocator  # noqa: PLC0415

    bound_allocator()
    session = SlotSession(path, slots=batch, max_len=2048, intra_op_threads=THREADS, spinning=False)
    slots = list(range(batch))
    for s in slots:
        session.prefill(s, prompt_ids(PROMPT_TOKENS, s), logits=False)
    step = median_s(lambda: session.decode(slots, [7] * batch), 7)
    prompt = prompt_ids(PROMPT_TOKENS, 99)[:-1]
    prefill = median_s(lambda: session.prefill(0, prompt, logits=False), 7)
    return {"step_ms": 1e3 * step, "prefill_ms_per_token": 1e3 * prefill / len(prompt)}


def main() -> int:
    config = json.loads((WORK / "bench-llama" / "checkpoint" / "config.json").read_text())
    hidden, vocab, layers = config["hidden_size"], config["vocab_size"], config["num_hidden_layers"]
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    head_dim = hidden // heads
    engine = engine_ms(WORK / "ours-fp32" / "model.onnx")  # first: before PyTorch's threads and allocations exist
    gemm, bandwidth, head = torch_gemm_gflops(), read_gb_s(), head_gflops(hidden, vocab)
    attention = {(r, c): attention_ms(r, c, heads, kv_heads, head_dim, 2048)
                 for r, c in ((1, 64), (8, 64), (8, CONTEXT))}
    kv_step = 2 * layers * 8 * CONTEXT * kv_heads * head_dim * 4
    grown = attention[(8, CONTEXT)] - attention[(8, 64)]
    per_request_ms = OUTPUT_TOKENS * engine["step_ms"] / 32 + PROMPT_TOKENS * engine["prefill_ms_per_token"]
    lines = [
        f"- fp32 matmul ceiling: PyTorch 2048^3 {gemm:.0f} GFLOP/s; MLAS on the LM head at batch 32 "
        f"([32, {hidden}] x [{hidden}, {vocab}], prepacked) {head:.0f} GFLOP/s ({head / gemm:.2f} of it)",
        f"- memory read bandwidth (PyTorch sum over 1 GiB): {bandwidth:.1f} GB/s",
        f"- GroupQueryAttention alone, one layer, fp32 cache in place: 1 x 64 {attention[(1, 64)]:.2f} ms, "
        f"8 x 64 {attention[(8, 64)]:.2f} ms, 8 x {CONTEXT} {attention[(8, CONTEXT)]:.2f} ms "
        f"({kv_step / layers / 1e6:.1f} MB of cache read: {kv_step / layers / attention[(8, CONTEXT)] / 1e6:.1f} GB/s)",
        f"- batch 8 at ~{CONTEXT}: the KV cache one decode step reads is {kv_step / 1e6:.0f} MB, "
        f"{1e3 * kv_step / bandwidth / 1e9:.1f} ms at the measured bandwidth; ONNX Runtime's kernel adds "
        f"{layers * grown:.1f} ms ({layers} layers x {grown:.2f})",
        f"- our engine (ours-fp32, no spinning): batch-32 decode step at context ~{PROMPT_TOKENS} "
        f"{engine['step_ms']:.1f} ms, prompt prefill {engine['prefill_ms_per_token']:.2f} ms per token "
        f"({PROMPT_TOKENS}-token prompts, no head)",
        f"- served c=32 with no serving cost (bench/llm.py's chats: {PROMPT_TOKENS} prompt and {OUTPUT_TOKENS} "
        f"output tokens each): {per_request_ms:.0f} ms of engine time per request, at most "
        f"{1e3 * OUTPUT_TOKENS / per_request_ms:.0f} output tok/s",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
