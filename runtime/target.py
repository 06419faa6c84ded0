"""Where an engine runs, as recorded in config.pbtxt: device, engine kind and precision, parsed once at load.

The builders decide these (builders/target.py); the Triton shells read them back with EngineTarget and pick
sessions and execution providers from them (runtime/providers.py). A repository written before these
parameters existed reads as the CPU default.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

DEVICE_PARAMETER = "device"
ENGINE_PARAMETER = "engine_kind"
PRECISION_PARAMETER = "precision"


class Device(str, Enum):
    CPU = "cpu"
    CUDA = "cuda"


class EngineKind(str, Enum):
    ONNXRUNTIME = "onnxruntime"  # ORT CPU execution provider (the embedded default)
    ONNXRUNTIME_CUDA = "onnxruntime-cuda"  # ORT CUDA execution provider, plain ONNX graphs
    ONNXRUNTIME_TENSORRT = "onnxruntime-tensorrt"  # ORT TensorRT EP over compiled EPContext models, CUDA EP fallback
    TENSORRT_LLM = "tensorrt-llm"  # TensorRT-LLM's own runtime and batcher (LLM entries, builders/llm/trtllm.py)

    @property
    def compiled(self) -> bool:
        """Graphs must be compiled for the serving GPU (`builders compile`) before Triton loads them."""
        return self is EngineKind.ONNXRUNTIME_TENSORRT


class Precision(str, Enum):
    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT8 = "int8"  # weight-only (MatMulNBits), activations in fp32 on CPU / fp16 on GPUs
    INT4 = "int4"

    @property
    def weight_only(self) -> bool:
        return self in (Precision.INT8, Precision.INT4)


@dataclass(frozen=True)
class EngineTarget:
    device: Device = Device.CPU
    engine: EngineKind = EngineKind.ONNXRUNTIME
    precision: Precision = Precision.FP32

    @property
    def on_gpu(self) -> bool:
        return self.device is Device.CUDA

    def to_parameters(self) -> dict[str, str]:
        return {DEVICE_PARAMETER: self.device.value, ENGINE_PARAMETER: self.engine.value,
                PRECISION_PARAMETER: self.precision.value}

    @classmethod
    def from_parameters(cls, params: dict[str, str]) -> "EngineTarget":
        return cls(Device(params.get(DEVICE_PARAMETER, "cpu")), EngineKind(params.get(ENGINE_PARAMETER, "onnxruntime")),
                   Precision(params.get(PRECISION_PARAMETER, "fp32")))


def instance_device_id(args: dict) -> int:
    """The GPU Triton placed this model instance on (KIND_GPU instances); 0 for CPU instances."""
    if str(args.get("model_instance_kind", "CPU")).upper() != "GPU":
        return 0
    return int(args.get("model_instance_device_id", 0))
