"""`make test-gpu` / `make gpu-check`: the GPU path end to end, on a GPU node (fails loudly anywhere else).

A test harness, not a service part: it runs the integration suite and the GPU benches (bench/gpu.py), so it lives
with the tests, above everything it drives.

  tests:   build the demo repository for cuda, compile it (`builders compile`), run the integration suite against
           it on a real tritonserver, then serve the CPU and the GPU repositories side by side and compare at the
           same inputs: embeddings cosine >= 0.999, the first 16 greedy tokens identical, images PSNR >= 30 dB
           (tiny-sdxl under TensorRT and again under the CUDA provider, at two sizes each).
  benches: bench/gpu.py (LLM decode tok/s vs the HBM roofline, SDXL ms/image, e5-large-shaped tokens/s).
  all:     both, one table at the end.      require: only check that this node has a usable GPU.
"""
from __future__ import annotations

import argparse
import base64
import io
import os
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from bench.gpu import print_table, require_gpu, run_benches

COSINE_MIN, PSNR_MIN_DB, GREEDY_TOKENS = 0.999, 30.0, 16
# tiny-sdxl again on the CUDA provider (fp16 text encoders and UNet, one CUDA graph per UNet shape), beside the
# default TensorRT entry; two sizes make two UNet shapes, so two captured graphs must each give the CPU's image.
CUDA_EP_SDXL, IMAGE_SIZES = "tiny-sdxl-cuda-ep", ("128x128", "64x64")
TEXTS = ["A GPU and a CPU should agree on this sentence.", "Short.", "Überprüfung mit Nicht-ASCII: 日本語 ✓"]
PROMPTS = ["Once upon a time", "The capital of France is"]


# -- the comparisons (pure, unit-tested on CPU) ----------------------------------------------------------
def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return float(cos.min())


def psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    """8-bit images: 10 log10(255^2 / MSE); identical images give infinity."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def same_prefix(a: list, b: list, n: int = GREEDY_TOKENS) -> bool:
    return len(a) >= n and len(b) >= n and a[:n] == b[:n]


# -- orchestration ---------------------------------------------------------------------------------------
def build_gpu_repository(repo: Path) -> None:
    from builders.compile import compile_repository  # noqa: PLC0415
    from builders.demo import build_demo  # noqa: PLC0415
    from builders.target import BuildTarget  # noqa: PLC0415
    from runtime.target import Device  # noqa: PLC0415

    build_demo(repo, repo.parent / "gpu_work", target=BuildTarget(Device.CUDA))
    build_cuda_ep_sdxl(repo, repo.parent / "gpu_work" / CUDA_EP_SDXL)
    compile_repository(repo)


def build_cuda_ep_sdxl(repo: Path, work: Path) -> None:
    """The demo's tiny-sdxl (same seed, so the CPU entry's weights) for the CUDA provider: no compile step."""
    from builders.sdxl import TINY_SIZES, TINY_SEED, build_model, make_tiny_sdxl  # noqa: PLC0415
    from builders.target import BuildTarget  # noqa: PLC0415
    from runtime.target import Device, EngineKind  # noqa: PLC0415

    build_model(make_tiny_sdxl(work / "checkpoint", TINY_SEED), repo, CUDA_EP_SDXL, work, sizes=TINY_SIZES,
                default_size="64x64", steps=4, max_steps=50, max_batch_images=2, external_data="always",
                owned_by="triton-openai", target=BuildTarget(Device.CUDA, EngineKind.ONNXRUNTIME_CUDA))


def run_integration_suite(repo: Path) -> bool:
    env = {**os.environ, "MODEL_REPOSITORY": str(repo), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "tests/integration"], env=env).returncode == 0


def _serve(stack: ExitStack, repo: Path, logs: Path):
    import openai  # noqa: PLC0415

    from launcher.adapter_process import AdapterServer  # noqa: PLC0415
    from launcher.process import free_port  # noqa: PLC0415
    from launcher.tritonserver import TritonServer  # noqa: PLC0415

    triton = TritonServer(repo, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                          log_file=logs / f"{repo.name}-triton.log")
    triton.start()
    stack.callback(triton.stop)
    triton.wait_ready(900)
    adapter = AdapterServer(triton.grpc_url, free_port(), logs / f"{repo.name}-adapter.log")
    adapter.start()
    stack.callback(adapter.stop)
    adapter.wait_ready(120)
    return openai.OpenAI(base_url=adapter.base_url, api_key="unused", timeout=600)


def _image(client, model: str, size: str) -> np.ndarray:
    from PIL import Image  # noqa: PLC0415

    image = client.images.generate(model=model, prompt="a red fox", size=size, response_format="b64_json",
                                   extra_body={"seed": 7, "num_inference_steps": 8}).data[0].b64_json
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(image))).convert("RGB"))


def _outputs(client, image_models: tuple[str, ...]) -> dict:
    vectors = np.array([d.embedding for d in client.embeddings.create(model="all-MiniLM-L6-v2", input=TEXTS,
                                                                      encoding_format="float").data])
    tokens = [client.completions.create(model="tiny-llama-3", prompt=p, max_tokens=GREEDY_TOKENS, temperature=0,
                                        logprobs=1, extra_body={"ignore_eos": True}).choices[0].logprobs.tokens
              for p in PROMPTS]
    images = {(model, size): _image(client, model, size) for model in image_models for size in IMAGE_SIZES}
    return {"embeddings": vectors, "tokens": tokens, "images": images}


def compare_with_cpu(cpu_repo: Path, gpu_repo: Path) -> list[tuple[str, str, bool]]:
    with tempfile.TemporaryDirectory() as logs, ExitStack() as stack:
        cpu = _outputs(_serve(stack, cpu_repo, Path(logs)), ("tiny-sdxl",))
        gpu = _outputs(_serve(stack, gpu_repo, Path(logs)), ("tiny-sdxl", CUDA_EP_SDXL))
    cosine = min_cosine(cpu["embeddings"], gpu["embeddings"])
    greedy = all(same_prefix(a, b) for a, b in zip(cpu["tokens"], gpu["tokens"]))
    return [("embeddings min cosine vs CPU", f"{cosine:.6f} (>= {COSINE_MIN})", cosine >= COSINE_MIN),
            (f"LLM first {GREEDY_TOKENS} greedy tokens vs CPU", "identical" if greedy else "differ", greedy),
            *image_rows(cpu["images"], gpu["images"])]


def image_rows(cpu: dict, gpu: dict) -> list[tuple[str, str, bool]]:
    """One row per GPU model and size: PSNR against the CPU tiny-sdxl's image of that size (seed 7)."""
    rows = []
    for (model, size), pixels in gpu.items():
        psnr = psnr_db(cpu[("tiny-sdxl", size)], pixels)
        rows.append((f"{model} {size} image PSNR vs CPU (seed 7)", f"{psnr:.1f} dB (>= {PSNR_MIN_DB})",
                     psnr >= PSNR_MIN_DB))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tests.gpu.check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["require", "tests", "benches", "all"])
    parser.add_argument("--cpu-repo", type=Path, default=Path("build/model_repository"))
    parser.add_argument("--gpu-repo", type=Path, default=Path("build/gpu_repository"))
    args = parser.parse_args(argv)
    require_gpu()
    rows: list[tuple[str, str, bool]] = []
    if args.what in ("tests", "all"):
        build_gpu_repository(args.gpu_repo)
        rows.append(("integration suite on the cuda repository", "", run_integration_suite(args.gpu_repo)))
        rows += compare_with_cpu(args.cpu_repo, args.gpu_repo)
    if args.what in ("benches", "all"):
        rows += run_benches(args.gpu_repo.parent / "gpu_bench")
    print_table(rows)
    return 0 if all(ok for _, _, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
