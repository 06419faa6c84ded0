"""`python -m builders compile REPO`: compile every planned ONNX graph of a cuda repository into TensorRT.

Runs on a GPU node of the serving type (the engine-build job). For each `<graph>.compile.json` a builder
placed (builders/profiles.py) it builds the engine through ONNX Runtime's TensorRT execution provider with the
plan's optimization profiles and precision, reusing one timing cache across builds, and keeps what ONNX
Runtime dumps beside the graph: the EPContext model `<graph>_ctx.onnx` and the engine it points to. Triton
then loads the context model without rebuilding. `<graph>.manifest.json` records the GPU and the library
versions; the serving side refuses an engine whose manifest differs (runtime/engine_manifest.py).
"""
from __future__ import annotations

import os
from pathlib import Path

from builders.profiles import PLAN_SUFFIX, CompilePlan
from builders.progress import BuildError, console, step
from runtime.engine_manifest import BuildEnvironment, EngineManifest, context_path, manifest_path
from runtime.gpu_probe import GpuUnavailable, check_gpu_provider
from runtime.providers import TENSORRT, CompileOptions, GpuOptions, create_session, providers_for
from runtime.target import Device, EngineKind, EngineTarget, Precision

EPCONTEXT_OP = "EPContext"


def default_timing_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "triton-openai" / "trt-timing"


def compile_repository(repo: Path, timing_cache: Path | None = None, device_id: int = 0) -> list[Path]:
    """Compile every planned graph under repo; returns the manifests written."""
    try:
        check_gpu_provider(TENSORRT, device_id)
    except GpuUnavailable as exc:
        raise BuildError(f"builders compile needs an NVIDIA GPU with TensorRT on this node: {exc}") from exc
    plans = sorted(Path(repo).rglob(f"*{PLAN_SUFFIX}"))
    if not plans:
        raise BuildError(f"nothing to compile under {repo}: build it with --device cuda first")
    environment = BuildEnvironment.current(device_id)
    cache = timing_cache or default_timing_cache()
    cache.mkdir(parents=True, exist_ok=True)
    console.print(f"compiling {len(plans)} graphs on {environment.gpu_name} (sm {environment.compute_capability}), "
                  f"TensorRT {environment.tensorrt_version}, ONNX Runtime {environment.onnxruntime_version}")
    return [compile_graph(plan.with_name(plan.name[:-len(PLAN_SUFFIX)] + ".onnx"), CompilePlan.from_json(
        plan.read_text()), environment, cache, device_id) for plan in plans]


def compile_graph(graph: Path, plan: CompilePlan, environment: BuildEnvironment, timing_cache: Path,
                  device_id: int = 0) -> Path:
    context = context_path(graph)
    _remove_previous(graph)
    target = EngineTarget(Device.CUDA, EngineKind.ONNXRUNTIME_TENSORRT, Precision(plan.precision))
    gpu = GpuOptions(device_id, fp16=plan.precision == Precision.FP16.value,
                     compile=CompileOptions(context, plan.profiles, timing_cache))
    with step(f"compile {graph} ({plan.precision}, {len(plan.profiles)} profiles)"):
        create_session(graph, providers_for(target, gpu))  # building the session builds and dumps the engine
    engines = check_context_model(context)
    manifest = EngineManifest(environment, graph.name, context.name, engines, plan.precision,
                              {"profiles": [p.to_json() for p in plan.profiles]})
    path = manifest_path(graph)
    path.write_text(manifest.to_json())
    return path


def check_context_model(context: Path) -> tuple[str, ...]:
    """The engine files the EPContext model points to; an error when TensorRT did not take the whole graph."""
    import onnx  # noqa: PLC0415

    if not context.exists():
        raise BuildError(f"ONNX Runtime wrote no EPContext model at {context}")
    model = onnx.load(str(context), load_external_data=False)
    others = sorted({n.op_type for n in model.graph.node if n.op_type != EPCONTEXT_OP})
    if others:
        raise BuildError(f"{context.name}: TensorRT did not take the whole graph (left {', '.join(others)} to other "
                         "providers), so the context model cannot carry it; serve it with --engine onnxruntime-cuda")
    engines = []
    for node in model.graph.node:
        attrs = {a.name: a for a in node.attribute}
        if attrs["embed_mode"].i == 0:
            engines.append(attrs["ep_cache_context"].s.decode())
    missing = [e for e in engines if not (context.parent / e).exists()]
    if missing:
        raise BuildError(f"{context.name} points to engines that are not beside it: {', '.join(missing)}")
    return tuple(engines)


def _remove_previous(graph: Path) -> None:
    """Drop an earlier compile's outputs, so an engine for another GPU is never picked up from the cache."""
    old = manifest_path(graph)
    if old.exists():
        for engine in EngineManifest.from_json(old.read_text()).engine_files:
            (graph.parent / engine).unlink(missing_ok=True)
    for stale in (context_path(graph), old):
        stale.unlink(missing_ok=True)
