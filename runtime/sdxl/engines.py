"""Engine sessions behind one small interface, so a TensorRT runner can replace ONNX Runtime per engine."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import onnxruntime as ort
import torch

from runtime.target import EngineTarget

ENGINES = ("text_encoder", "text_encoder_2", "unet", "vae_decoder")


class Engine(Protocol):
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def run_tensors(self, feeds: dict[str, torch.Tensor], out_shapes: dict[str, tuple[int, ...]]
                    ) -> dict[str, torch.Tensor]:
        """Tensors on the pipeline's device in and out (runtime/sdxl/device.py keeps them on the GPU)."""


EngineFactory = Callable[[Path], Engine]


class OrtEngine:
    """An ONNX Runtime CPU session (external data is found next to the .onnx file); thread-safe run()."""

    def __init__(self, path: Path, threads: int = 0):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # No busy-waiting between runs: the denoise loop does Python/torch work between UNet calls on the same cores.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._outputs = [o.name for o in self._session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._outputs, self._session.run(self._outputs, feeds)))

    def run_tensors(self, feeds: dict[str, torch.Tensor], out_shapes: dict[str, tuple[int, ...]]
                    ) -> dict[str, torch.Tensor]:
        """CPU tensors share memory with numpy both ways: no copies."""
        outputs = self.run({name: tensor.numpy() for name, tensor in feeds.items()})
        return {name: torch.from_numpy(value) for name, value in outputs.items()}


def ort_factory(threads: int = 0) -> EngineFactory:
    return lambda path: OrtEngine(path, threads)


def engine_factory(target: EngineTarget, device_id: int, threads: int = 0) -> tuple[EngineFactory, str]:
    """The engines and the torch device of a pipeline for its target: ORT on the CPU, or CUDA engines with the
    latents on GPU `device_id` (the VAE keeps its fp32 target: its engine was compiled fp32)."""
    if not target.on_gpu:
        return ort_factory(threads), "cpu"
    from runtime.sdxl.device import cuda_factory  # noqa: PLC0415  (needs a CUDA torch)

    return cuda_factory(target, device_id), f"cuda:{device_id}"


def set_torch_threads(threads: int) -> None:
    """Size torch's intra-op pool (process-wide). The engines do the heavy math; torch runs only the scheduler's
    small per-step ops, between which its default pool (a thread per core) spin-waits: on tiny-sdxl (2 cores)
    that costs ~40% more CPU per image for the same latency, CPU that concurrent requests need."""
    if threads > 0:
        torch.set_num_threads(threads)


def load_engines(engine_dir: Path, factory: EngineFactory) -> dict[str, Engine]:
    return {name: factory(Path(engine_dir) / f"{name}.onnx") for name in ENGINES}
