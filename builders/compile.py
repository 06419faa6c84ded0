"""`python -m builders compile REPO`: compile every planned ONNX graph of a cuda repository into TensorRT.

Runs on a GPU node of the serving type (the engine-build job). For each `<graph>.compile.json` a builder
placed (builders/profiles.py) it builds the engine through ONNX Runtime's TensorRT execution provider with the
plan's optimization profiles and precision, reusing one timing cache across builds, and keeps what ONNX
Runtime dumps beside the graph: the EPContext model `<graph>_ctx.onnx` and the engine it points to. A graph
whose weights pass protobuf's 2 GB limit (the SDXL UNet) is compiled by TensorRT's own parser instead and given
the same kind of EPContext model (builders/trt_direct.py). Triton then loads the context model without
rebuilding. `<graph>.manifest.json` records the GPU and the library
versions; the serving side refuses an engine whose manifest differs (runtime/engine_manifest.py).
"""
from __future__ import annotations

import os
from pathlib import Path

from builders.profiles import PLAN_SUFFIX, CompilePlan
from builders.progress import BuildError, console, step
from builders.trt_direct import (EPCONTEXT_OP, build_engine, engine_path, needs_direct_build, trt_architecture,
                                 write_context_model)
from runtime.engine_manifest import BuildEnvironment, EngineManifest, context_path, manifest_path
from runtime.gpu_probe import GpuUnavailable, check_gpu_provider
from runtime.providers import TENSORRT, CompileOptions, GpuOptions, create_session, providers_for
from runtime.target import Device, EngineKind, EngineTarget, Precision


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
    direct = needs_direct_build(graph)
    with step(f"compile {graph} ({plan.precision}, {len(plan.profiles)} profiles"
              f"{', TensorRT parser: over 2 GB' if direct else ''})"):
        if direct:
            engine = build_engine(graph, plan, engine_path(graph), timing_cache /
                                  f"sm{trt_architecture(environment.compute_capability)}.timing", device_id)
            write_context_model(graph, context, engine.name, environment.compute_capability)
        else:
            _compile_with_provider(graph, plan, context, timing_cache, device_id)
    engines = check_context_model(context, graph)
    manifest = EngineManifest(environment, graph.name, context.name, engines, plan.precision,
                              {"profiles": [p.to_json() for p in plan.profiles]})
    path = manifest_path(graph)
    path.write_text(manifest.to_json())
    return path


def _compile_with_provider(graph: Path, plan: CompilePlan, context: Path, timing_cache: Path, device_id: int) -> None:
    """ONNX Runtime's TensorRT provider builds the engine while it creates the session and dumps the context model."""
    target = EngineTarget(Device.CUDA, EngineKind.ONNXRUNTIME_TENSORRT, Precision(plan.precision))
    gpu = GpuOptions(device_id, fp16=plan.precision == Precision.FP16.value,
                     compile=CompileOptions(context, plan.profiles, timing_cache))
    create_session(graph, providers_for(target, gpu))


def check_context_model(context: Path, graph: Path | None = None) -> tuple[str, ...]:
    """The engine files the EPContext model points to; an error when TensorRT did not take the whole graph, when
    an engine path is one the provider refuses to open (absolute, or with '..'), or when the context model's
    inputs and outputs are not the graph's."""
    import onnx  # noqa: PLC0415

    if not context.exists():
        raise BuildError(f"no EPContext model was written at {context}")
    model = onnx.load(str(context), load_external_data=False)
    if graph is not None:
        _check_same_io(model, onnx.load(str(graph), load_external_data=False), context.name)
    others = sorted({n.op_type for n in model.graph.node if n.op_type != EPCONTEXT_OP})
    if others:
        raise BuildError(f"{context.name}: TensorRT did not take the whole graph (left {', '.join(others)} to other "
                         "providers), so the context model cannot carry it; serve it with --engine onnxruntime-cuda")
    engines = []
    for node in model.graph.node:
        attrs = {a.name: a for a in node.attribute}
        if attrs["embed_mode"].i == 0:
            engines.append(attrs["ep_cache_context"].s.decode())
    unsafe = [e for e in engines if e.startswith("/") or ".." in e]
    if unsafe:
        raise BuildError(f"{context.name} points to {', '.join(unsafe)}: ONNX Runtime opens only engine paths "
                         "relative to the context model, without '..'")
    missing = [e for e in engines if not (context.parent / e).exists()]
    if missing:
        raise BuildError(f"{context.name} points to engines that are not beside it: {', '.join(missing)}")
    return tuple(engines)


def _check_same_io(context_model, graph_model, name: str) -> None:
    def signature(model) -> tuple[list[str], list[str]]:
        weights = {t.name for t in model.graph.initializer}
        return [i.name for i in model.graph.input if i.name not in weights], [o.name for o in model.graph.output]

    if signature(context_model) != signature(graph_model):
        raise BuildError(f"{name}: inputs/outputs {signature(context_model)} are not the graph's "
                         f"{signature(graph_model)}")


def _remove_previous(graph: Path) -> None:
    """Drop an earlier compile's outputs, so an engine for another GPU is never picked up from the cache."""
    old = manifest_path(graph)
    if old.exists():
        for engine in EngineManifest.from_json(old.read_text()).engine_files:
            (graph.parent / engine).unlink(missing_ok=True)
    for stale in (context_path(graph), old):
        stale.unlink(missing_ok=True)
