"""Our decode step against onnxruntime-genai's in ONE process, alternating blocks of steps, so that the machine's
drift (which moves bench/peers.py's one-process-per-side rounds by 10-15% here) falls on both alike. Not part of
`make test`.

  HF_HUB_OFFLINE=1 .venv/bin/python bench/decode_ab.py [--blocks 10] [--steps 10]   (after bench/peers.py's build)

Sides, fp32, context ~64, 2 intra-op threads, spinning (genai's default):
  ours         runtime/llm/slot_session.py on build/peers/ours-fp32
  plain ORT    the same IOBinding loop (past and present one buffer) from Python, on our graph and on genai's
               graph unchanged
  genai        onnxruntime-genai's own generator on that graph
Medians over blocks, and ours' speed over genai's per block (> 1: ours faster).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.peers import MAX_LEN, THREADS, WORK, genai_generator, genai_model, prompt_ids  # noqa: E402

CONTEXT = 64


def ours(batch: int):
    from runtime.llm.slot_session import SlotSession  # noqa: PLC0415

    session = SlotSession(WORK / "ours-fp32" / "model.onnx", slots=batch, max_len=MAX_LEN,
                          intra_op_threads=THREADS, spinning=True)
    slots = list(range(batch))
    for s in slots:
        session.prefill(s, prompt_ids(CONTEXT, s))
    return lambda: session.decode(slots, [7] * batch)


def plain(batch: int, graph: str = "genai-fp32"):
    """A graph through plain onnxruntime, driven as our engine drives its own."""
    import onnxruntime as ort  # noqa: PLC0415

    from runtime.llm.slot_session import CacheShape  # noqa: PLC0415

    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    session = ort.InferenceSession(str(WORK / graph / "model.onnx"), options, providers=["CPUExecutionProvider"])
    keep = {i.name for i in session.get_inputs()} & {"logits_to_keep"}
    pasts = [i for i in session.get_inputs() if i.name.startswith("past_key_values.")]
    shape = CacheShape.from_genai_config(WORK / graph)
    buffers = {p.name: np.zeros((batch, shape.kv_heads, MAX_LEN, shape.head_dim), np.float32) for p in pasts}
    vocab = next(o for o in session.get_outputs() if o.name == "logits").shape[-1]
    logits = np.zeros((batch, 1, vocab), np.float32)
    length = [0]

    def run(ids: np.ndarray) -> None:
        binding = session.io_binding()
        binding.bind_cpu_input("input_ids", ids)
        binding.bind_cpu_input("attention_mask", np.ones((batch, length[0] + ids.shape[1]), np.int64))
        for name in keep:  # our graph's head takes the last position
            binding.bind_cpu_input(name, np.array([1], np.int64))
        for name, buffer in buffers.items():
            shape = list(buffer.shape)
            binding.bind_input(name, "cpu", 0, np.float32, shape, buffer.ctypes.data)
            binding.bind_output(name.replace("past_key_values.", "present."), "cpu", 0, np.float32, shape,
                                buffer.ctypes.data)
        if ids.shape[1] == 1:
            binding.bind_output("logits", "cpu", 0, np.float32, list(logits.shape), logits.ctypes.data)
        else:
            binding.bind_output("logits")
        session.run_with_iobinding(binding)
        length[0] += ids.shape[1]

    run(np.array([prompt_ids(CONTEXT, s) for s in range(batch)], np.int64))
    return lambda: run(np.full((batch, 1), 7, np.int64))


def genai(batch: int):
    model = genai_model(WORK / "genai-fp32")
    generator, _ = genai_generator(model, batch, CONTEXT)

    def step() -> None:
        assert model is not None  # the model stays alive as long as its generator steps
        generator.generate_next_token()

    return step


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--blocks", type=int, default=10)
    p.add_argument("--steps", type=int, default=10)
    args = p.parse_args()
    for batch in (1, 8):
        sides = {"ours": ours(batch), "plain ORT, our graph": plain(batch, "ours-fp32"),
                 "plain ORT, genai's graph": plain(batch), "genai": genai(batch)}
        times: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(args.blocks):
            for name, step in sides.items():
                start = time.perf_counter()
                for _ in range(args.steps):
                    step()
                times[name].append((time.perf_counter() - start) / args.steps)
        ratio = [g / o for o, g in zip(times["ours"], times["genai"])]  # > 1: ours faster
        medians = ", ".join(f"{name} {1e3 * statistics.median(t):.1f}" for name, t in times.items())
        print(f"b{batch} ms per step: {medians}; ours' speed over genai's per block: median "
              f"{statistics.median(ratio):.3f}, {min(ratio):.3f}-{max(ratio):.3f}", flush=True)
        del sides
    return 0


if __name__ == "__main__":
    sys.exit(main())
