"""The decoder on a GPU: the KV cache lives in torch CUDA tensors between steps, bound to ONNX Runtime by pointer.

Every step binds the cache tensors as the past inputs and freshly allocated device tensors (torch's caching
allocator) as the present outputs, so no cache byte crosses to the host per token; batch changes (join, fork,
compact) are torch ops on the device. torch and ONNX Runtime share one CUDA stream (user_compute_stream).
Logits are copied to the host ([rows, vocab] per step): the EngineSession contract returns numpy logits and
the scheduler samples on the host; keeping them on the device is the device sampler's job, behind that contract.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from runtime.llm.ort_session import OrtSession
from runtime.gpu_probe import check_gpu_provider
from runtime.providers import CUDA, GpuOptions, providers_for
from runtime.target import EngineTarget

_TORCH = {"tensor(float)": torch.float32, "tensor(float16)": torch.float16, "tensor(bfloat16)": torch.bfloat16}
_ORT_ELEMENT = {torch.float32: np.float32, torch.float16: np.float16, torch.bfloat16: 16}  # 16: TensorProto.BFLOAT16


class TorchCacheSession(OrtSession):
    """The KV cache as torch tensors on `device`, bound by address; on a CPU device it runs (and is tested) with
    the CPU provider, on a GPU through CudaOrtSession."""

    def __init__(self, model_path: str | Path, device: torch.device = torch.device("cpu"), providers=None):
        self.device = device
        super().__init__(model_path, providers=providers)
        self.torch_dtype = _TORCH[self.sess.get_inputs()[3].type]

    def _empty_past(self, rows: int) -> list:
        """Prefill's zero-length past as ORT-allocated device values (a torch tensor of no bytes has no address)."""
        import onnxruntime as ort  # noqa: PLC0415

        shape, element = (rows, self.kv_heads, 0, self.head_dim), _ORT_ELEMENT[self.torch_dtype]
        return [ort.OrtValue.ortvalue_from_shape_and_type(shape, element, self.device.type, self.device.index or 0)
                for _ in self.past_names]

    def _past_arrays(self) -> list[torch.Tensor]:
        return self.past

    def _own(self, presents: list) -> list:
        return presents  # already device tensors (see _run)

    def _cat(self, parts: list) -> torch.Tensor:
        return torch.cat(parts)

    def _contiguous(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous()

    def _left_pad(self, x: torch.Tensor, width: int) -> torch.Tensor:
        extra = width - x.shape[2]  # x: [rows, H, past, D] -> [rows, H, width, D]
        return x if extra == 0 else torch.nn.functional.pad(x, (0, 0, extra, 0))

    def _run(self, ids: np.ndarray, mask: np.ndarray, positions: np.ndarray, past: list) -> tuple[np.ndarray, list]:
        import onnxruntime as ort  # noqa: PLC0415

        binding = self.sess.io_binding()
        binding.bind_cpu_input("input_ids", ids)  # small host inputs: ORT copies them on the shared stream
        binding.bind_cpu_input("attention_mask", mask)
        binding.bind_cpu_input("position_ids", positions)
        rows, total = ids.shape[0], mask.shape[1]
        binding.bind_output("logits")  # host memory: ORT copies [rows, vocab] back; bound first = outputs[0]
        presents, inputs = [], [v if isinstance(v, ort.OrtValue) else v.contiguous() for v in past]  # kept alive
        for name, value in zip(self.past_names, inputs):
            if isinstance(value, ort.OrtValue):
                binding.bind_ortvalue_input(name, value)
            else:
                self._bind(binding.bind_input, name, value)
        for name in self.present_names:  # [rows, H, past + new, D]
            out = torch.empty((rows, self.kv_heads, total, self.head_dim), dtype=self.torch_dtype, device=self.device)
            self._bind(binding.bind_output, name, out)
            presents.append(out)
        self.sess.run_with_iobinding(binding)
        return binding.get_outputs()[0].numpy().astype(np.float32, copy=False), presents

    def _bind(self, bind, name: str, tensor: torch.Tensor) -> None:
        bind(name, self.device.type, self.device.index or 0, _ORT_ELEMENT[tensor.dtype], tuple(tensor.shape),
             tensor.data_ptr())


class CudaOrtSession(TorchCacheSession):
    def __init__(self, model_path: str | Path, target: EngineTarget, device_id: int = 0):
        check_gpu_provider(CUDA, device_id)  # before torch.cuda, whose errors would not name what is missing
        device = torch.device("cuda", device_id)
        stream = torch.cuda.current_stream(device).cuda_stream
        super().__init__(model_path, device, providers_for(target, GpuOptions(device_id, stream=stream)))
