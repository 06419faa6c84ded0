"""SDXL family: diffusers checkpoint -> ONNX engines -> client-facing Triton pipeline model.

CLI:
  python -m builders sdxl --checkpoint DIR --out REPO [--model-id ID]   (real SDXL base defaults)
  python -m builders sdxl-tiny --out DIR [--seed 0]                      (the tiny-sdxl checkpoint)
"""
from __future__ import annotations

import argparse
from pathlib import Path

from builders.cli import add_build_args, model_id, work_root
from builders.onnx_export import check_weights_dtype
from builders.progress import BuildError, console, step
from builders.sdxl.checkpoint import SdxlCheckpoint, inspect_checkpoint
from builders.sdxl.export import ENGINES, export_engines
from builders.sdxl.place import place_model
from builders.sdxl.tiny import TINY_SEED, make_tiny_sdxl
from builders.target import CPU_TARGET, BuildTarget, add_target_args, target_from_args
from runtime.sdxl.config import ImageModelConfig, format_size, parse_size_list

# SDXL base's training buckets (width x height), all about one megapixel.
SDXL_SIZES = "1024x1024,1152x896,896x1152,1216x832,832x1216,1344x768,768x1344,1536x640,640x1536"
TINY_ID = "tiny-sdxl"
TINY_SIZES = "64x64,128x128,128x64,64x128"


def build_model(checkpoint: Path, repo: Path, model_id: str, work: Path, *, sizes: str = SDXL_SIZES,
                default_size: str = "1024x1024", steps: int = 30, guidance: float = 5.0, max_steps: int = 100,
                max_guidance: float = 20.0, max_batch_images: int = 8, instances: int = 1, ort_threads: int = 0,
                torch_threads: int = 1, external_data: str = "auto", owned_by: str = "stabilityai",
                target: BuildTarget = CPU_TARGET) -> Path:
    """Export the checkpoint's engines to work/onnx, then place them as repo/<model_id>; returns the version dir."""
    if instances < 1 or ort_threads < 0 or torch_threads < 0:
        raise BuildError(f"need instances >= 1 and thread counts >= 0 (got instances={instances}, "
                         f"ort_threads={ort_threads}, torch_threads={torch_threads})")
    with step(f"inspect checkpoint {checkpoint}"):
        ckpt = inspect_checkpoint(checkpoint)
        config = ImageModelConfig(sizes=_sizes(sizes), default_size=_sizes(default_size)[0], default_steps=steps,
                                  default_guidance=guidance, max_steps=max_steps, max_guidance=max_guidance,
                                  force_zeros_for_empty_prompt=ckpt.force_zeros_for_empty_prompt,
                                  max_batch_images=max_batch_images, ort_threads=ort_threads,
                                  torch_threads=torch_threads)
        _check_sizes(config, ckpt)
    target = target.for_family("sdxl")
    dtypes = {name: target.export_dtype(name) for name in ENGINES}
    engines = export_engines(ckpt, Path(work) / "onnx", external_data, dtypes)
    for name, path in engines.items():
        check_weights_dtype(path, dtypes[name])
    with step(f"place {model_id} in {repo}"):
        return place_model(Path(repo), model_id, ckpt, engines, config, owned_by, instances, target)


def build_demo(repo: Path, work: Path, target: BuildTarget = CPU_TARGET) -> list[str]:
    with step(f"make {TINY_ID} checkpoint (seed {TINY_SEED})"):
        checkpoint = make_tiny_sdxl(Path(work) / "checkpoint", TINY_SEED)
    # External data forced: the demo loads engines the way the >2 GB real UNet must be loaded.
    # CPU serving on a small box (bench/results/images.md): two instances (processes, one per core) with one
    # ORT thread each beat one instance with two threads per engine or two batches on threads (the GIL).
    build_model(checkpoint, repo, TINY_ID, work, sizes=TINY_SIZES, default_size="64x64", steps=4, guidance=5.0,
                max_steps=50, max_batch_images=2, instances=2, ort_threads=1, external_data="always",
                owned_by="triton-openai", target=target)
    return [TINY_ID]


def _sizes(text: str) -> tuple[tuple[int, int], ...]:
    try:
        sizes = tuple(parse_size_list(text))
    except ValueError:
        sizes = ()
    if not sizes:
        raise BuildError(f"invalid size list {text!r}: expected WIDTHxHEIGHT[,WIDTHxHEIGHT...]")
    return sizes


def _check_sizes(config: ImageModelConfig, ckpt: SdxlCheckpoint) -> None:
    bad = [s for s in (*config.sizes, config.default_size) if s[0] % ckpt.size_multiple or s[1] % ckpt.size_multiple]
    if bad:
        raise BuildError(f"sizes {', '.join(map(format_size, bad))} are not multiples of {ckpt.size_multiple} "
                         "(VAE scale x UNet downsampling) for this checkpoint")
    if config.default_size not in config.sizes:
        raise BuildError(f"default size {format_size(config.default_size)} is not among the sizes "
                         f"{config.supported_sizes_text()}")


def _cmd_build(args: argparse.Namespace) -> int:
    name = model_id(args)
    build_model(args.checkpoint, args.out, name, work_root(args) / name, sizes=args.sizes, default_size=args.default_size,
                steps=args.steps, guidance=args.guidance, max_steps=args.max_steps,
                max_batch_images=args.max_batch_images, instances=args.instances, ort_threads=args.ort_threads,
                torch_threads=args.torch_threads, external_data=args.external_data, target=target_from_args(args))
    console.print(f"{args.out / name}: serves {name}")
    return 0


def _cmd_make_tiny(args: argparse.Namespace) -> int:
    with step(f"make {TINY_ID} checkpoint (seed {args.seed})"):
        make_tiny_sdxl(args.out, args.seed)
    console.print(f"{args.out}: tiny SDXL checkpoint (diffusers layout)")
    return 0


def add_parser(subparsers) -> None:
    build = subparsers.add_parser("sdxl", help="SDXL: diffusers checkpoint -> ONNX engines -> Triton pipeline model")
    add_build_args(build, "diffusers SDXL base checkpoint directory")
    add_target_args(build)
    build.add_argument("--sizes", default=SDXL_SIZES, help="supported WIDTHxHEIGHT list, comma separated")
    build.add_argument("--default-size", default="1024x1024")
    build.add_argument("--steps", type=int, default=30, help="default num_inference_steps")
    build.add_argument("--guidance", type=float, default=5.0, help="default guidance_scale")
    build.add_argument("--max-steps", type=int, default=100)
    build.add_argument("--max-batch-images", type=int, default=8,
                       help="images of queued requests denoised as one UNet batch")
    build.add_argument("--instances", type=int, default=1,
                       help="model instances (processes), each running one batch at a time (GPU: 1; CPU: cores)")
    build.add_argument("--ort-threads", type=int, default=0,
                       help="ONNX Runtime intra-op threads per engine (0: one per core)")
    build.add_argument("--torch-threads", type=int, default=1,
                       help="torch intra-op threads for the scheduler's per-step ops")
    build.add_argument("--external-data", choices=["auto", "always", "never"], default="auto",
                       help="ONNX external data: auto = only for engines over 2 GB (the UNet)")
    build.set_defaults(fn=_cmd_build)
    tiny = subparsers.add_parser("sdxl-tiny", help=f"write the {TINY_ID} checkpoint (small configs, random weights)")
    tiny.add_argument("--out", type=Path, required=True)
    tiny.add_argument("--seed", type=int, default=TINY_SEED)
    tiny.set_defaults(fn=_cmd_make_tiny)
