"""Builds at real model sizes: `python -m builders sizes --family embeddings|llm|sdxl --out DIR`.

Random weights at the real architecture shape, from the real configs (no hub access): e5-large-v2, a
Llama-3.2-1B-shaped decoder (untied LM head: over 2 GB, so ONNX external data is exercised), SDXL base (UNet,
both text encoders, VAE). Two child processes per family: one writes the checkpoint (skipped when it is
already there), one runs the family's export from it, so the build's own peak RSS is measured alone. Prints
one JSON line: family, weights_bytes (export dtype), peak_rss_bytes, seconds, max_diff (ONNX vs PyTorch).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from builders import real_shapes
from runtime.memory import bound_allocator
from builders.progress import BuildError, console, peak_rss_bytes, step


@dataclass(frozen=True)
class SizeResult:
    family: str
    weights_bytes: int
    peak_rss_bytes: int
    seconds: float
    max_diff: float
    ratio: float  # peak_rss_bytes / weights_bytes


def build_embeddings(checkpoint: Path, work: Path, parts: list[str] | None = None) -> tuple[int, float]:
    from builders.embeddings.checkpoint import read_checkpoint  # noqa: PLC0415
    from builders.embeddings.export import export_onnx  # noqa: PLC0415

    exported = export_onnx(read_checkpoint(checkpoint), work / "model.onnx", "fp32")
    return exported.weights_bytes, exported.max_diff


def build_llm(checkpoint: Path, work: Path, parts: list[str] | None = None) -> tuple[int, float]:
    """parts: [precision] (fp32 default, int8, int4: what the CPU builds); max_diff is against PyTorch's fp32."""
    from builders.llm.export import export_checked  # noqa: PLC0415
    from runtime.target import Precision  # noqa: PLC0415

    exported = export_checked(checkpoint, work, Precision(parts[0] if parts else "fp32"))
    return exported.weights_bytes, exported.max_diff


def build_sdxl(checkpoint: Path, work: Path, parts: list[str] | None = None) -> tuple[int, float]:
    from builders.sdxl.checkpoint import inspect_checkpoint  # noqa: PLC0415
    from builders.sdxl.export import ENGINES, export_engine  # noqa: PLC0415

    ckpt = inspect_checkpoint(checkpoint)
    # external data for every engine: the .onnx files stay small and ONNX Runtime maps the weights in place
    exported = [export_engine(ckpt, name, work, "always", "fp16", check=True) for name in parts or ENGINES]
    return sum(e.weights_bytes for e in exported), max(e.max_diff for e in exported)


FAMILIES = {
    "embeddings": (real_shapes.make_e5_large_v2, build_embeddings),
    "llm": (real_shapes.make_llama_3_2_1b_untied, build_llm),
    "sdxl": (real_shapes.make_sdxl_base, build_sdxl),
}


def _make_child(family: str, checkpoint: Path) -> None:
    make, _ = FAMILIES[family]
    partial = checkpoint.with_name(checkpoint.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    with step(f"sizes: write the random-weight {family} checkpoint"):
        make(partial)
    partial.rename(checkpoint)


def _build_child(family: str, checkpoint: Path, work: Path, result: Path, parts: list[str] | None) -> None:
    bound_allocator()  # before the build's imports: a peak that does not depend on timing (runtime/memory.py)
    _, build = FAMILIES[family]
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    start = time.monotonic()
    weights, diff = build(checkpoint, work, parts)
    seconds = time.monotonic() - start
    peak = peak_rss_bytes()
    result.write_text(json.dumps(asdict(SizeResult(family, weights, peak, round(seconds, 1), diff,
                                                   round(peak / weights, 2)))))


def _run_child(target, *args) -> None:
    child = multiprocessing.get_context("spawn").Process(target=target, args=args)
    child.start()
    child.join()
    if child.exitcode != 0:
        raise BuildError(f"{target.__name__} for {args[0]} failed (exit code {child.exitcode}; log above)")


def measure(family: str, out: Path, parts: list[str] | None = None) -> SizeResult:
    out = Path(out) / family
    checkpoint, work, result = out / "checkpoint", out / "build", out / "result.json"
    if not (checkpoint / "DONE").exists():
        out.mkdir(parents=True, exist_ok=True)
        _run_child(_make_child, family, checkpoint)
        (checkpoint / "DONE").touch()
    result.unlink(missing_ok=True)
    _run_child(_build_child, family, checkpoint, work, result, parts)
    return SizeResult(**json.loads(result.read_text()))


def _cmd(args: argparse.Namespace) -> int:
    parts = args.sdxl_engines.split(",") if args.sdxl_engines else [args.llm_precision] if args.llm_precision else None
    result = measure(args.family, args.out, parts)
    console.print(f"peak RSS {result.peak_rss_bytes / 1e9:.2f} GB = {result.ratio}x the weights "
                  f"({result.weights_bytes / 1e9:.2f} GB)")
    print(json.dumps(asdict(result)), flush=True)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("sizes", help="build a real-size random-weight model of a family; print its peak memory")
    p.add_argument("--family", choices=sorted(FAMILIES), required=True)
    p.add_argument("--out", type=Path, default=Path("build/sizes"), help="checkpoints and exports go here")
    p.add_argument("--sdxl-engines", help="sdxl only: comma-separated engines to build (default: all four)")
    p.add_argument("--llm-precision", choices=["fp32", "int8", "int4"], help="llm only (default fp32)")
    p.set_defaults(fn=_cmd)
