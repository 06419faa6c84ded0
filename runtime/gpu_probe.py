"""What GPU and libraries this process can use, asked of the driver and the libraries themselves (ctypes).

No torch, no TensorRT Python package: the CUDA driver API (libcuda.so.1) names the GPU and its compute
capability, TensorRT's C entry point `getInferLibVersion` gives its version, and loading ONNX Runtime's
provider library names the first CUDA / cuDNN / TensorRT library it cannot find. These answers turn a GPU
provider that would silently fall back to the CPU into a load error that says what is missing.
"""
from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from pathlib import Path

_DRIVER = "libcuda.so.1"
_TENSORRT = "libnvinfer.so.10"  # the TensorRT major that onnxruntime-gpu 1.18+ links
_CC_MAJOR, _CC_MINOR = 75, 76  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR (cuda.h)
_PROVIDER_LIBRARIES = {"CUDAExecutionProvider": "libonnxruntime_providers_cuda.so",
                       "TensorrtExecutionProvider": "libonnxruntime_providers_tensorrt.so"}


class GpuUnavailable(RuntimeError):
    """A GPU engine cannot run here; the message names the missing device or library."""


@dataclass(frozen=True)
class GpuInfo:
    name: str
    compute_capability: str  # "9.0"


def _driver() -> ctypes.CDLL:
    try:
        cuda = ctypes.CDLL(_DRIVER)
    except OSError as exc:
        raise GpuUnavailable(f"no NVIDIA driver on this machine ({_DRIVER} cannot be loaded: {exc}): "
                             "no usable GPU") from exc
    status = cuda.cuInit(0)
    if status != 0:
        raise GpuUnavailable(f"the NVIDIA driver found no usable GPU (cuInit error {status})")
    return cuda


def device_count() -> int:
    count = ctypes.c_int(0)
    _driver().cuDeviceGetCount(ctypes.byref(count))
    return count.value


def gpu_info(device_id: int = 0) -> GpuInfo:
    """Name and compute capability of CUDA device `device_id` (raises GpuUnavailable when there is none)."""
    cuda = _driver()
    count = device_count()
    if not 0 <= device_id < count:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "unset")
        raise GpuUnavailable(f"no CUDA device {device_id}: {count} visible (CUDA_VISIBLE_DEVICES={visible})")
    device = ctypes.c_int(0)
    cuda.cuDeviceGet(ctypes.byref(device), device_id)
    name = ctypes.create_string_buffer(256)
    cuda.cuDeviceGetName(name, 256, device)
    major, minor = ctypes.c_int(0), ctypes.c_int(0)
    cuda.cuDeviceGetAttribute(ctypes.byref(major), _CC_MAJOR, device)
    cuda.cuDeviceGetAttribute(ctypes.byref(minor), _CC_MINOR, device)
    return GpuInfo(name.value.decode(), f"{major.value}.{minor.value}")


def tensorrt_version() -> str:
    try:
        lib = ctypes.CDLL(_TENSORRT)
    except OSError as exc:
        raise GpuUnavailable(f"TensorRT is not installed ({_TENSORRT} cannot be loaded: {exc})") from exc
    return format_tensorrt_version(lib.getInferLibVersion())


def format_tensorrt_version(code: int) -> str:
    """getInferLibVersion(): MAJOR * 10000 + MINOR * 100 + PATCH since TensorRT 10 (100500 -> 10.5.0)."""
    return f"{code // 10000}.{code // 100 % 100}.{code % 100}"


def provider_library_problem(provider: str) -> str | None:
    """Why ONNX Runtime's shared library for `provider` cannot load (first missing dependency), or None."""
    import onnxruntime  # noqa: PLC0415

    name = _PROVIDER_LIBRARIES.get(provider)
    if name is None:
        return None
    path = Path(onnxruntime.__file__).parent / "capi" / name
    if not path.exists():
        return f"{path.name} is not in this onnxruntime ({onnxruntime.__version__}): install onnxruntime-gpu"
    try:
        ctypes.CDLL(str(path))
    except OSError as exc:
        if "cannot open shared object file" in str(exc):  # a CUDA / cuDNN / TensorRT library is missing
            return f"{provider} cannot load: {exc}"
    return None


def check_gpu_provider(provider: str, device_id: int = 0) -> GpuInfo:
    """Raise GpuUnavailable naming the missing GPU or library before ONNX Runtime would fall back to the CPU."""
    info = gpu_info(device_id)
    problem = provider_library_problem(provider)
    if problem:
        raise GpuUnavailable(f"{problem} (GPU {device_id}: {info.name})")
    return info
