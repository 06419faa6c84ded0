"""SDXL engines on a GPU: ONNX Runtime sessions fed and read through I/O binding on torch CUDA tensors.

Latents, conditioning and noise predictions stay on the device through the whole denoising loop. The sessions
run on a dedicated stream (runtime/cuda_stream.py) fenced against torch's before and after every run, so the
inputs torch wrote are complete when ONNX Runtime reads them, without a host synchronisation.
With CUDA graphs (the UNet under the CUDA provider: fixed shapes for every step of a request), each input/output
shape gets its own persistent buffers and graph id: ONNX Runtime captures on first use and replays afterwards,
which needs the same addresses on every run.
"""
from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from runtime.cuda_stream import DeviceStream
from runtime.gpu_probe import check_gpu_provider
from runtime.providers import CUDA, GpuOptions, open_session
from runtime.target import EngineKind, EngineTarget

_ELEMENT = {torch.float32: np.float32, torch.float16: np.float16, torch.int64: np.int64}
_TORCH_TYPES = {"tensor(float)": torch.float32, "tensor(float16)": torch.float16, "tensor(int64)": torch.int64}
MAX_GRAPHS = 16  # captured shapes per engine (each holds its own activations)


class TorchIoEngine:
    """An ONNX Runtime session run on torch tensors of `device` by address (CPU tensors: the CPU provider, which
    is how this is tested; CUDA tensors: see CudaEngine)."""

    def __init__(self, session, device: torch.device, cuda_graph: bool = False, stream: DeviceStream | None = None):
        self.device, self._session, self._stream = device, session, stream
        self._outputs = [o.name for o in self._session.get_outputs()]
        self._out_types = {o.name: _torch_type(o.type, o.name) for o in self._session.get_outputs()}
        self._cuda_graph = cuda_graph
        self._graphs: dict[tuple, tuple[int, dict[str, torch.Tensor], dict[str, torch.Tensor]]] = {}

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Host arrays in and out (the text encoders: once per request, small)."""
        return dict(zip(self._outputs, self._session.run(self._outputs, feeds)))

    def run_tensors(self, feeds: dict[str, torch.Tensor], out_shapes: dict[str, tuple[int, ...]]
                    ) -> dict[str, torch.Tensor]:
        """Device tensors in and out; out_shapes: each output's shape (the pipeline knows them)."""
        graph_id, inputs, outputs = self._buffers(feeds, out_shapes)
        for name, tensor in feeds.items():
            if inputs[name] is not tensor:
                inputs[name].copy_(tensor)
        binding = self._session.io_binding()
        for name, tensor in inputs.items():
            binding.bind_input(name, self.device.type, self.device.index or 0, _ELEMENT[tensor.dtype],
                               tuple(tensor.shape), tensor.data_ptr())
        for name, tensor in outputs.items():
            binding.bind_output(name, self.device.type, self.device.index or 0, _ELEMENT[tensor.dtype],
                                tuple(tensor.shape), tensor.data_ptr())
        with self._stream.fenced() if self._stream else nullcontext():
            self._session.run_with_iobinding(binding, _run_options(graph_id))
        return {name: t.clone() if graph_id > 0 else t for name, t in outputs.items()}

    def _buffers(self, feeds: dict[str, torch.Tensor], out_shapes: dict[str, tuple[int, ...]]):
        """Fresh tensors, or per-shape persistent ones when this shape is (or may become) a CUDA graph."""
        key = tuple((n, tuple(t.shape)) for n, t in sorted(feeds.items()))
        if key not in self._graphs and (not self._cuda_graph or len(self._graphs) >= MAX_GRAPHS):
            inputs = {n: t.contiguous() for n, t in feeds.items()}
            return -1, inputs, self._empty_outputs(out_shapes)
        if key not in self._graphs:
            self._graphs[key] = (len(self._graphs) + 1,
                                 {n: torch.empty_like(t, device=self.device) for n, t in feeds.items()},
                                 self._empty_outputs(out_shapes))
        return self._graphs[key]

    def _empty_outputs(self, out_shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
        """Output buffers in each output's dtype as the graph declares it."""
        return {n: torch.empty(s, dtype=self._out_types[n], device=self.device) for n, s in out_shapes.items()}


def _torch_type(onnx_type: str, name: str) -> torch.dtype:
    """ONNX Runtime 1.20's Python binding names bound buffers by numpy dtype, which has no bfloat16: a bf16 output
    cannot be bound, so the exports keep their outputs fp32 (casts inside the graph)."""
    if onnx_type not in _TORCH_TYPES:
        raise TypeError(f"output {name} is {onnx_type}: I/O binding here takes {', '.join(_TORCH_TYPES)}")
    return _TORCH_TYPES[onnx_type]


def cuda_engine(path: Path, target: EngineTarget, stream: DeviceStream, cuda_graph: bool = False) -> TorchIoEngine:
    import onnxruntime as ort  # noqa: PLC0415

    device_id = stream.device.index
    session = open_session(path, target, ort.SessionOptions(), GpuOptions(device_id, cuda_graph=cuda_graph,
                                                                         stream=stream.handle))
    return TorchIoEngine(session, stream.device, cuda_graph, stream)


def _run_options(graph_id: int):
    import onnxruntime as ort  # noqa: PLC0415

    options = ort.RunOptions()
    options.add_run_config_entry("gpu_graph_id", str(graph_id))  # -1: run without capturing
    return options


def graphs_per_shape(target: EngineTarget) -> bool:
    """Whether a session may capture one CUDA graph per input shape (run option gpu_graph_id). The CUDA provider
    keeps a graph per id; ONNX Runtime documents the ids for it only. The TensorRT provider's capture is one
    graph per session whatever the id, so a UNet serving several sizes and batch sizes would replay the first
    shape's graph for the others: under TensorRT the UNet runs without capture."""
    return target.engine is EngineKind.ONNXRUNTIME_CUDA


def cuda_factory(target: EngineTarget, device_id: int, graph_engines: tuple[str, ...] = ("unet",)):
    """EngineFactory for runtime.sdxl.engines.load_engines: CUDA graphs for the engines with fixed shapes per
    request (the UNet's 30 steps) where the provider keeps one per shape, plain device runs for the rest. The
    VAE's target is its own (fp32). All engines of one pipeline share one dedicated stream."""
    check_gpu_provider(CUDA, device_id)  # before torch.cuda, whose errors would not name what is missing
    stream = DeviceStream(torch.device("cuda", device_id))
    capture = graphs_per_shape(target)
    return lambda path: cuda_engine(path, target, stream, cuda_graph=capture and path.stem in graph_engines)
