"""Graphs past protobuf's 2 GB limit (the SDXL UNet, ~10 GB fp32) compiled by TensorRT's own ONNX parser.

ONNX Runtime's TensorRT provider hands TensorRT's parser the graph serialized as one protobuf message, with the
initializers it loaded, and a message cannot exceed 2 GB even when the weights are external data on disk
(onnxruntime #15349). TensorRT's `OnnxParser.parse_from_file` reads the graph and its external data from the
files itself, so here TensorRT (10.5, the image's, through the tensorrt-cu12-bindings wheel on its libraries)
builds the engine with the plan's profiles and precision, and ONNX Runtime gets it as an EPContext model with
`embed_mode` 0: the form its TensorRT provider documents for loading a prebuilt engine without parsing the
graph again (engine path relative to the context model, in its folder).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
from onnx import helper

from builders.onnx_export import PROTOBUF_LIMIT, weight_bytes
from builders.profiles import CompilePlan
from builders.progress import BuildError

EPCONTEXT_OP, EPCONTEXT_DOMAIN = "EPContext", "com.microsoft"
ENGINE_SUFFIX = ".engine"


def needs_direct_build(graph: Path) -> bool:
    """Whether the graph's weights would not fit the one protobuf message ONNX Runtime gives TensorRT."""
    return weight_bytes(onnx.load(str(graph), load_external_data=False), graph.parent) > PROTOBUF_LIMIT


def engine_path(graph: Path) -> Path:
    return graph.with_name(graph.stem + ENGINE_SUFFIX)


def trt_architecture(compute_capability: str) -> str:
    """The provider's `hardware_architecture` value: major * 10 + minor ("9.0" -> "90")."""
    major, minor = compute_capability.split(".")
    return str(int(major) * 10 + int(minor))


def write_context_model(graph: Path, context: Path, engine: str, compute_capability: str) -> Path:
    """An EPContext model with the graph's own inputs and outputs, its one node pointing at `engine` (a file name
    in the context model's folder)."""
    model = onnx.load(str(graph), load_external_data=False)
    weights = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    node = helper.make_node(EPCONTEXT_OP, [i.name for i in inputs], [o.name for o in model.graph.output],
                            name=f"{graph.stem}_tensorrt", domain=EPCONTEXT_DOMAIN, main_context=1, embed_mode=0,
                            ep_cache_context=engine, hardware_architecture=trt_architecture(compute_capability),
                            onnx_model_filename=graph.name)
    opsets = [o for o in model.opset_import if o.domain in ("", "ai.onnx")]
    ctx = helper.make_model(helper.make_graph([node], graph.stem, inputs, list(model.graph.output)),
                            opset_imports=[*opsets, helper.make_opsetid(EPCONTEXT_DOMAIN, 1)])
    ctx.ir_version = model.ir_version
    onnx.save(ctx, str(context))
    return context


def build_engine(graph: Path, plan: CompilePlan, out: Path, timing_cache: Path, device_id: int,
                 workspace_bytes: int = 8 << 30) -> Path:
    """Parse `graph` from its file (external data included) and build the serialized engine into `out`."""
    trt = _tensorrt()
    _select_device(device_id)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(graph)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BuildError(f"TensorRT's ONNX parser refused {graph.name}: {errors}")
    config = _builder_config(trt, builder, network, plan, workspace_bytes)
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.exists() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BuildError(f"TensorRT could not build an engine for {graph.name} (see its log above)")
    out.write_bytes(memoryview(serialized))
    timing_cache.write_bytes(memoryview(config.get_timing_cache().serialize()))
    return out


def _builder_config(trt: Any, builder: Any, network: Any, plan: CompilePlan, workspace_bytes: int) -> Any:
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    config.builder_optimization_level = 3  # as the provider route (trt_builder_optimization_level)
    if plan.precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    dynamic = {network.get_input(i).name for i in range(network.num_inputs) if -1 in tuple(network.get_input(i).shape)}
    for p in plan.profiles:
        profile = builder.create_optimization_profile()
        for name in sorted(dynamic):
            profile.set_shape(name, p.min[name], p.opt[name], p.max[name])
        config.add_optimization_profile(profile)
    return config


def _tensorrt() -> Any:
    try:
        import tensorrt_bindings as trt  # noqa: PLC0415  (tensorrt-cu12-bindings: the image's libnvinfer)
    except ImportError:
        try:
            import tensorrt as trt  # noqa: PLC0415  (a full TensorRT Python install)
        except ImportError as exc:
            raise BuildError("graphs over 2 GB are compiled by TensorRT's Python bindings, which are not "
                             "installed here (the gpu image has tensorrt-cu12-bindings)") from exc
    return trt


def _select_device(device_id: int) -> None:
    """TensorRT builds on the calling thread's current CUDA device."""
    import torch  # noqa: PLC0415  (the image's CUDA torch; only used to pick the device)

    torch.cuda.set_device(device_id)
