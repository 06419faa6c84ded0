"""Device, engine kind and precision of what the builders write: the one place that decides them.

  --device cpu|cuda            cpu (default): ONNX Runtime on the CPU, exactly the embedded default
                               cuda: TensorRT (through ONNX Runtime's TensorRT EP, CUDA EP fallback) on GPUs
  --engine KIND                onnxruntime | onnxruntime-cuda | onnxruntime-tensorrt (default: per device)
  --precision fp32|fp16|bf16|int8|int4   default fp32 on cpu, fp16 on cuda; the SDXL VAE always stays fp32;
                               int8 / int4: the LLM's weights only (MatMulNBits), on cpu or cuda
  --gpus 0,1 --instances-per-gpu N   placement of the engine-running models (default: every GPU, one each)

What a precision means per family: the LLM is exported in it (weights and KV cache); encoder and SDXL graphs
stay fp32 under TensorRT, which builds fp16 kernels from them (trt_fp16_enable), and are exported in it on CPU.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, replace

from tritonclient.grpc import model_config_pb2

from builders.progress import BuildError
from builders.triton_config import set_parameters
from runtime.target import Device, EngineKind, EngineTarget, Precision

DEFAULT_PRECISION = {Device.CPU: Precision.FP32, Device.CUDA: Precision.FP16}
ENGINES_ON = {Device.CPU: (EngineKind.ONNXRUNTIME,),
              Device.CUDA: (EngineKind.ONNXRUNTIME_TENSORRT, EngineKind.ONNXRUNTIME_CUDA)}  # first: default
# The decoder's KV cache grows by one position per step: a TensorRT box profile over (batch, past, new) would
# size activations for batch x context x context. It runs on the CUDA EP with the cache bound on the device;
# TensorRT engines for LLMs come from TensorRT-LLM (its own engine kind).
NOT_FOR = {"llm": {EngineKind.ONNXRUNTIME_TENSORRT}}
FP32_COMPONENTS = {"vae_decoder"}  # SDXL's VAE overflows in fp16
EXPORTED_IN_PRECISION = {"llm"}  # families whose graph carries the precision under TensorRT too
WEIGHT_ONLY_FAMILIES = {"llm"}  # int8 / int4 MatMulNBits graphs


@dataclass(frozen=True)
class BuildTarget:
    device: Device = Device.CPU
    requested_engine: EngineKind | None = None  # None: the family's default on this device
    requested_precision: Precision | None = None  # None: DEFAULT_PRECISION[device]
    gpus: tuple[int, ...] = ()  # () = every GPU Triton sees
    instances_per_gpu: int = 1
    family: str = ""  # set by for_family(): whose engines and defaults apply

    def __post_init__(self) -> None:
        if self.engine not in self._allowed():
            raise BuildError(f"engine {self.engine.value} does not run {self.family or 'models'} on "
                             f"{self.device.value} (choose one of {', '.join(e.value for e in self._allowed())})")
        if self.device is Device.CPU and self.precision is Precision.BF16:
            raise BuildError("bf16 needs --device cuda (ONNX Runtime's CPU kernels do not cover bf16 graphs)")
        if self.precision.weight_only and self.family not in WEIGHT_ONLY_FAMILIES and self.family:
            raise BuildError(f"{self.precision.value} (weight-only quantization) is for the LLM, not {self.family}")
        if self.instances_per_gpu < 1 or any(g < 0 for g in self.gpus):
            raise BuildError(f"need --instances-per-gpu >= 1 and GPU ids >= 0 (got {self.instances_per_gpu}, "
                             f"{list(self.gpus)})")

    def _allowed(self) -> list[EngineKind]:
        return [e for e in ENGINES_ON[self.device] if e not in NOT_FOR.get(self.family, ())]

    def for_family(self, family: str) -> "BuildTarget":
        return replace(self, family=family)

    @property
    def engine(self) -> EngineKind:
        return self.requested_engine or self._allowed()[0]

    @property
    def precision(self) -> Precision:
        return self.requested_precision or DEFAULT_PRECISION[self.device]

    @property
    def on_gpu(self) -> bool:
        return self.device is Device.CUDA

    def component(self, name: str = "") -> EngineTarget:
        """The engine target of one graph (a component such as the SDXL VAE may differ from the model's)."""
        precision = Precision.FP32 if name in FP32_COMPONENTS else self.precision
        return EngineTarget(self.device, self.engine, precision)

    def export_dtype(self, component: str = "") -> str:
        """The dtype the ONNX graph is exported in (fp32 where TensorRT lowers precision itself)."""
        precision = self.component(component).precision
        if self.engine is EngineKind.ONNXRUNTIME_TENSORRT and self.family not in EXPORTED_IN_PRECISION:
            if precision is Precision.BF16:
                raise BuildError(f"{self.family}: bf16 under TensorRT needs a bf16 builder flag that "
                                 "onnxruntime-gpu 1.20 does not have; use --precision fp16")
            return Precision.FP32.value
        return precision.value

    def apply(self, config: model_config_pb2.ModelConfig, component: str = "", place: bool = True) -> None:
        """Record the target in config.pbtxt and, on GPUs, place the instances (one group, KIND_GPU)."""
        set_parameters(config, **self.component(component).to_parameters())
        if not (self.on_gpu and place):
            return
        del config.instance_group[:]
        group = config.instance_group.add()
        group.kind = model_config_pb2.ModelInstanceGroup.KIND_GPU
        group.count = self.instances_per_gpu
        group.gpus.extend(self.gpus)


CPU_TARGET = BuildTarget()


def add_target_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=[d.value for d in Device], default="cpu",
                        help="where the engines run (cuda: TensorRT engines, compiled by `builders compile`)")
    parser.add_argument("--engine", choices=[e.value for e in EngineKind],
                        help="engine kind (default: onnxruntime on cpu, onnxruntime-tensorrt on cuda)")
    parser.add_argument("--precision", "--dtype", dest="precision", choices=[p.value for p in Precision],
                        help="fp32 | fp16 | bf16 | int8 | int4 (default: fp32 on cpu, fp16 on cuda; the SDXL VAE "
                             "stays fp32; int8 / int4: the LLM's weight-only quantization)")
    parser.add_argument("--gpus", type=_gpu_list, default=(), help="GPU ids for the instances, e.g. 0,1 "
                        "(default: every GPU Triton sees)")
    parser.add_argument("--instances-per-gpu", type=int, default=1, help="model instances on each GPU")


def target_from_args(args: argparse.Namespace) -> BuildTarget:
    return BuildTarget(Device(args.device), EngineKind(args.engine) if args.engine else None,
                       Precision(args.precision) if args.precision else None, tuple(args.gpus),
                       args.instances_per_gpu)


def _gpu_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected GPU ids like 0,1 (got {text!r})") from None
