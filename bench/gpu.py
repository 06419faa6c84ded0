"""GPU benchmarks, engine level, on random-weight models of the real shapes (a GPU node has no hub access):

  LLM   Llama-3-8B-shaped decoder (hidden 4096, 8 KV heads, MLP 14336; LLM_LAYERS layers, default 8 of the 32
        to fit the 10-minute check), fp16, CUDA EP with the KV cache on the device: decode tokens/s at batch
        1 / 8 / 32 and the ratio to the HBM roofline = batch / ((weight bytes + KV bytes read) / bandwidth),
        the bandwidth measured here with a device-to-device copy.
  SDXL  ms per image, 30 steps, through the pipeline with latents on the device: the real SDXL base when
        SDXL_CHECKPOINT names a diffusers folder (1024x1024), else tiny-sdxl at 128x128 (labelled as such).
  e5    e5-large-shaped encoder (BERT-large: 24 layers, hidden 1024), compiled to TensorRT fp16 with pooling in
        the graph: tokens/s at full 512-token rows.

  python -m bench.gpu            (make gpu-check runs it after the GPU tests, through tests/gpu/check.py)   Refuses without a GPU.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

from builders.target import BuildTarget
from runtime.target import Device, EngineKind, EngineTarget

Row = tuple[str, str, bool]
GPU = BuildTarget(Device.CUDA)


def device_bandwidth(gigabytes: float = 2.0) -> float:
    """Bytes per second of a device-to-device copy (read + write counted), the practical HBM bound."""
    import torch  # noqa: PLC0415

    src = torch.empty(int(gigabytes * 2**30), dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    dst.copy_(src)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(10):
        dst.copy_(src)
    torch.cuda.synchronize()
    return 2 * src.numel() * 10 / (time.perf_counter() - start)


def llm_decode(work: Path, layers: int = int(os.environ.get("LLM_LAYERS", "8")), steps: int = 64) -> list[Row]:
    from builders.llm.export import onnx_file_size  # noqa: PLC0415
    from builders.llm.repository import build_model  # noqa: PLC0415
    from builders.llm.tiny import TinySpec, make_tiny_llama  # noqa: PLC0415
    from runtime.llm.slot_session import CudaSlotSession  # noqa: PLC0415

    spec = TinySpec(hidden_size=4096, intermediate_size=14336, num_layers=layers, num_heads=32, num_kv_heads=8,
                    max_model_len=2048)
    checkpoint = make_tiny_llama(work / "llm-8b-shaped", spec)
    target = GPU.for_family("llm")
    version = build_model(checkpoint, work / "repo", "llm-8b-shaped", work=work / "llm", target=target)
    session = CudaSlotSession(version / "model.onnx", 32, spec.max_model_len, target.component())
    weights, bandwidth, rows = onnx_file_size(version), device_bandwidth(), []
    kv_per_token = layers * 2 * 8 * 128 * 2  # K and V, 8 heads x 128 dims, fp16
    for batch in (1, 8, 32):
        slots, prompt = list(range(batch)), [1 + i % 100 for i in range(128)]
        for slot in slots:
            session.prefill(slot, prompt)
        for _ in range(3):
            session.decode(slots, [5] * batch)
        start = time.perf_counter()
        for _ in range(steps):
            session.decode(slots, [5] * batch)  # logits come back to the host: the step is synchronous
        seconds = time.perf_counter() - start
        mean_past = 128 + 3 + steps / 2
        bound = batch / ((weights + batch * mean_past * kv_per_token) / bandwidth)
        achieved = batch * steps / seconds
        rows.append((f"LLM decode, 8B-shaped x{layers} layers, batch {batch}",
                     f"{achieved:,.0f} tok/s = {achieved / bound:.0%} of roofline ({bandwidth / 1e12:.2f} TB/s)",
                     batch != 1 or achieved / bound >= 0.70))
    return rows


def e5_large(work: Path, iterations: int = 50) -> list[Row]:
    from transformers import BertConfig, BertModel  # noqa: PLC0415

    from builders.compile import compile_repository  # noqa: PLC0415
    from builders.embeddings import build, demo_checkpoint  # noqa: PLC0415
    from builders.embeddings.repository import ServingOptions  # noqa: PLC0415
    from runtime.embeddings.session import OrtEncoderSession  # noqa: PLC0415

    ckpt = work / "e5-large-shaped"
    BertModel(BertConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                         max_position_embeddings=512)).save_pretrained(ckpt)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json", "modules.json",
                 "sentence_bert_config.json", "1_Pooling"):
        src = demo_checkpoint() / name
        if src.is_file():
            (ckpt / name).write_bytes(src.read_bytes())
        elif src.is_dir():
            (ckpt / name).mkdir(exist_ok=True)
            for f in src.iterdir():
                (ckpt / name / f.name).write_bytes(f.read_bytes())
    repo = work / "repo"
    target = GPU.for_family("embeddings")
    build(ckpt, repo, work / "e5", "e5-large-shaped", "fp32", ServingOptions.for_target(target))
    compile_repository(repo)
    engine = repo / "e5-large-shaped__encoder" / "1" / "model.pooled.onnx"
    session = OrtEncoderSession(engine, target=target.component())
    rows, length = 16384 // 512, 512
    ids = np.random.default_rng(0).integers(1000, 20000, (rows, length)).astype(np.int64)
    mask = np.ones_like(ids)
    session.run(ids, mask)
    start = time.perf_counter()
    for _ in range(iterations):
        session.run(ids, mask)
    rate = rows * length * iterations / (time.perf_counter() - start)
    return [("e5-large-shaped encoder, TensorRT fp16, 512-token rows", f"{rate:,.0f} tokens/s (target 50k)",
             rate >= 50_000)]


def sdxl(work: Path, runs: int = 3) -> list[Row]:
    from builders.compile import compile_repository  # noqa: PLC0415
    from builders.sdxl import TINY_SEED, build_model, make_tiny_sdxl  # noqa: PLC0415
    from runtime.sdxl.config import GenerationRequest  # noqa: PLC0415
    from runtime.sdxl.engines import engine_factory  # noqa: PLC0415
    from runtime.sdxl.pipeline import SdxlPipeline  # noqa: PLC0415

    real = os.environ.get("SDXL_CHECKPOINT")
    checkpoint = Path(real) if real else make_tiny_sdxl(work / "tiny-sdxl", TINY_SEED)
    size = (1024, 1024) if real else (128, 128)
    sizes = f"{size[0]}x{size[1]}"
    version = build_model(checkpoint, work / "repo", "sdxl", work / "sdxl", sizes=sizes, default_size=sizes,
                          max_batch_images=1, target=GPU)
    compile_repository(work / "repo")
    factory, device = engine_factory(EngineTarget(Device.CUDA, EngineKind.ONNXRUNTIME_TENSORRT), 0)
    pipeline = SdxlPipeline.from_dir(version, factory, device=device)
    request = GenerationRequest("a red fox in the snow", 1, size[0], size[1], 30, 5.0, 1)
    pipeline.generate(request)  # warm-up (CUDA graph capture)
    start = time.perf_counter()
    for _ in range(runs):
        pipeline.generate(request)
    ms = (time.perf_counter() - start) / runs * 1000
    label = "SDXL base" if real else "tiny-sdxl (no SDXL weights on this node: set SDXL_CHECKPOINT)"
    return [(f"{label} {sizes}, 30 steps", f"{ms:,.0f} ms/image", True)]


def require_gpu() -> None:
    """Exit with a message where this node has no usable GPU (the GPU checks and benches refuse to run)."""
    from runtime.gpu_probe import GpuUnavailable, check_gpu_provider  # noqa: PLC0415
    from runtime.providers import TENSORRT  # noqa: PLC0415

    try:
        check_gpu_provider(TENSORRT)
    except GpuUnavailable as exc:
        sys.exit(f"GPU check FAILED: no usable NVIDIA GPU with CUDA 12 / TensorRT 10 here: {exc}")


def print_table(rows: list[Row]) -> None:
    """The GPU checks' and benches' report: one row per check, its result and whether it passed."""
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    table = Table("check", "result", "pass")
    for name, result, ok in rows:
        table.add_row(name, result, "yes" if ok else "[red]NO[/]")
    Console().print(table)


def run_benches(work: Path) -> list[Row]:
    import shutil  # noqa: PLC0415

    rows: list[Row] = []
    for bench in (llm_decode, e5_large, sdxl):
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        rows += bench(work)
    return rows


if __name__ == "__main__":
    require_gpu()
    table = run_benches(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("build/gpu_bench"))
    print_table(table)
    sys.exit(0 if all(ok for _, _, ok in table) else 1)
