"""A dedicated CUDA stream for ONNX Runtime sessions that read and write torch tensors on the device.

ONNX Runtime's CUDA and TensorRT providers take a stream as `user_compute_stream`; a handle of 0 (what torch's
default stream reports) means "no user stream" to them, so they run on streams of their own that torch's work
is not ordered with, and CUDA-graph capture on the legacy stream 0 is not allowed. Each GPU session therefore
gets a stream created here (never 0), and every run is fenced on the device, without a host synchronisation:
the session's stream waits for the torch stream that wrote its inputs, and that torch stream waits for the
session's stream before it reads the outputs (or reuses freed memory the session still reads).

    stream = DeviceStream(torch.device("cuda", 0))
    GpuOptions(device_id=0, stream=stream.handle)        # runtime/providers.py
    with stream.fenced():
        session.run_with_iobinding(binding)
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator


class DeviceStream:
    """A non-default CUDA stream on `device` and the two waits that order it with torch's current stream."""

    def __init__(self, device: Any, cuda: Any = None):
        if cuda is None:
            import torch  # noqa: PLC0415  (a CUDA build of torch; tests pass a fake module)

            cuda = torch.cuda
        self._cuda, self.device = cuda, device
        self._stream = cuda.Stream(device=device)
        self.handle = int(self._stream.cuda_stream)
        if self.handle == 0:  # 0 would silently mean "no user stream" to ONNX Runtime
            raise RuntimeError(f"torch.cuda.Stream on {device} reported handle 0 (the legacy default stream)")

    def before_run(self) -> None:
        """The session's stream waits for the work torch queued so far (the inputs it wrote)."""
        self._stream.wait_stream(self._cuda.current_stream(self.device))

    def after_run(self) -> None:
        """Torch's current stream waits for the session's run (its outputs, its reads of torch's memory)."""
        self._cuda.current_stream(self.device).wait_stream(self._stream)

    @contextmanager
    def fenced(self) -> Iterator[None]:
        self.before_run()
        try:
            yield
        finally:
            self.after_run()
