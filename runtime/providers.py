"""ONNX Runtime execution providers and their options per engine target: the one place that names them.

Option names are those of onnxruntime-gpu 1.20.2 (the version pinned for the Triton 24.10 image), checked
against the strings its provider libraries parse. A GPU session is created only after the driver and the
provider's libraries answered (runtime/gpu_probe.py), and checked afterwards: ONNX Runtime would otherwise
fall back to the CPU with a printed warning, which on a GPU node is a bug, not a degraded mode.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.gpu_probe import GpuUnavailable, check_gpu_provider
from runtime.target import EngineKind, EngineTarget

CPU, CUDA, TENSORRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"
Providers = list[tuple[str, dict[str, str]]]


@dataclass(frozen=True)
class Profile:
    """One TensorRT optimization profile: input name -> shape at min / opt / max."""
    min: dict[str, tuple[int, ...]]
    opt: dict[str, tuple[int, ...]]
    max: dict[str, tuple[int, ...]]

    def to_json(self) -> dict:
        return {"min": _lists(self.min), "opt": _lists(self.opt), "max": _lists(self.max)}

    @classmethod
    def from_json(cls, data: dict) -> "Profile":
        return cls(*({k: tuple(v) for k, v in data[key].items()} for key in ("min", "opt", "max")))

    def to_options(self) -> dict[str, str]:
        """trt_profile_{min,opt,max}_shapes: "name:1x77,other:1x4x64x64" (every dynamic input, explicit)."""
        return {f"trt_profile_{key}_shapes": ",".join(f"{name}:{'x'.join(map(str, shape))}"
                                                      for name, shape in getattr(self, key).items())
                for key in ("min", "opt", "max")}


@dataclass(frozen=True)
class GpuOptions:
    device_id: int = 0
    fp16: bool = True  # TensorRT may pick fp16 kernels (the graph itself stays as exported)
    cuda_graph: bool = False  # capture and replay (fixed input addresses and shapes: see runtime/sdxl/device.py)
    stream: int | None = None  # a dedicated CUDA stream's handle (runtime/cuda_stream.py), never 0
    compile: "CompileOptions | None" = None  # set only by `builders compile`


@dataclass(frozen=True)
class CompileOptions:
    context_model: Path  # where ONNX Runtime writes the EPContext model; the engine goes beside it
    profiles: tuple[Profile, ...]  # one or more (an input repeated in the option strings adds a profile)
    timing_cache: Path  # reused across builds: tactic timings of earlier compiles on this GPU type
    workspace_bytes: int = 8 << 30


def _stream_option(gpu: GpuOptions) -> dict[str, str]:
    """user_compute_stream, refusing 0: both providers read 0 as "no user stream" and run on streams of their
    own, unordered with the caller's tensors (and CUDA-graph capture on the legacy stream fails)."""
    if gpu.stream is None:
        return {}
    if gpu.stream == 0:
        raise ValueError("user_compute_stream 0 is the legacy default stream: pass a dedicated stream's handle "
                         "(runtime/cuda_stream.py DeviceStream)")
    return {"user_compute_stream": str(gpu.stream)}


def cuda_options(gpu: GpuOptions) -> dict[str, str]:
    options = {"device_id": str(gpu.device_id), "arena_extend_strategy": "kSameAsRequested",
               "cudnn_conv_algo_search": "HEURISTIC", "do_copy_in_default_stream": "1",
               "enable_cuda_graph": "1" if gpu.cuda_graph else "0", **_stream_option(gpu)}
    return options


def tensorrt_options(gpu: GpuOptions) -> dict[str, str]:
    options = {"device_id": str(gpu.device_id), "trt_fp16_enable": _flag(gpu.fp16),
               "trt_cuda_graph_enable": _flag(gpu.cuda_graph), **_stream_option(gpu)}
    if gpu.compile is not None:
        c = gpu.compile
        options.update({"trt_engine_cache_enable": "True", "trt_dump_ep_context_model": "True",
                        "trt_ep_context_file_path": str(c.context_model), "trt_ep_context_embed_mode": "0",
                        "trt_timing_cache_enable": "True", "trt_timing_cache_path": str(c.timing_cache),
                        "trt_max_workspace_size": str(c.workspace_bytes), "trt_builder_optimization_level": "3",
                        **profile_options(c.profiles)})
    return options


def profile_options(profiles: tuple[Profile, ...]) -> dict[str, str]:
    parts = [p.to_options() for p in profiles]
    return {key: ",".join(part[key] for part in parts) for key in parts[0]} if parts else {}


def providers_for(target: EngineTarget, gpu: GpuOptions = GpuOptions()) -> Providers:
    """The provider list for a target; TensorRT is followed by CUDA for the nodes TensorRT does not take."""
    if target.engine is EngineKind.ONNXRUNTIME:
        return [(CPU, {})]
    if target.engine is EngineKind.ONNXRUNTIME_CUDA:
        return [(CUDA, cuda_options(gpu))]
    if target.engine is EngineKind.ONNXRUNTIME_TENSORRT:
        return [(TENSORRT, tensorrt_options(gpu)), (CUDA, cuda_options(gpu))]
    raise ValueError(f"engine kind {target.engine.value!r} does not run under ONNX Runtime")


def create_session(model: str | Path, providers: Providers, session_options: Any = None) -> Any:
    """An InferenceSession that runs on exactly the requested providers, or a GpuUnavailable naming why not."""
    import onnxruntime as ort  # noqa: PLC0415

    requested = [name for name, _ in providers]
    missing = [name for name in requested if name not in ort.get_available_providers()]
    if missing:
        raise GpuUnavailable(f"this onnxruntime ({ort.__version__}) has no {', '.join(missing)} (it has "
                             f"{', '.join(ort.get_available_providers())}): install the pinned onnxruntime-gpu")
    for name, options in providers:
        if name != CPU:
            check_gpu_provider(name, int(options.get("device_id", 0)))
    session = ort.InferenceSession(str(model), session_options, providers=[n for n, _ in providers],
                                   provider_options=[o for _, o in providers])
    session.disable_fallback()  # an EP failure at run time raises instead of retrying on the CPU
    lost = [name for name in requested if name not in session.get_providers()]
    if lost:
        raise GpuUnavailable(f"ONNX Runtime dropped {', '.join(lost)} for {model} (running on "
                             f"{', '.join(session.get_providers())}): see the log above for the library it missed")
    return session


def _flag(value: bool) -> str:
    return "True" if value else "False"


def _lists(shapes: dict[str, tuple[int, ...]]) -> dict[str, list[int]]:
    return {name: list(shape) for name, shape in shapes.items()}


def open_session(graph: str | Path, target: EngineTarget, session_options: Any = None,
                 gpu: GpuOptions = GpuOptions()) -> Any:
    """The session for one exported graph: the graph itself on CPU / CUDA, its compiled EPContext model under
    TensorRT (after its manifest matched this GPU and these library versions)."""
    from runtime.engine_manifest import BuildEnvironment, load_compiled  # noqa: PLC0415

    graph = Path(graph)
    if target.engine.compiled:
        check_gpu_provider(TENSORRT, gpu.device_id)
        graph = load_compiled(graph, BuildEnvironment.current(gpu.device_id))
    return create_session(graph, providers_for(target, gpu), session_options)
