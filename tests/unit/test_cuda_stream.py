"""GPU sessions get a dedicated CUDA stream and are fenced against torch's stream on every run, checked with a
fake torch.cuda whose default stream is 0 (what real torch reports on its default stream)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from runtime import providers
from runtime.cuda_stream import DeviceStream
from runtime.providers import GpuOptions, cuda_options, tensorrt_options
from runtime.sdxl import device as sdxl_device
from runtime.target import Device, EngineKind, EngineTarget

CUDA_EP = EngineTarget(Device.CUDA, EngineKind.ONNXRUNTIME_CUDA)
TRT_EP = EngineTarget(Device.CUDA, EngineKind.ONNXRUNTIME_TENSORRT)


class FakeStream:
    def __init__(self, handle: int, log: list):
        self.cuda_stream, self._log = handle, log

    def wait_stream(self, other: "FakeStream") -> None:
        self._log.append(("wait", self.cuda_stream, other.cuda_stream))


class FakeCuda:
    """torch.cuda as far as DeviceStream uses it: the current stream is the default one, handle 0."""

    def __init__(self):
        self.log: list = []
        self.default = FakeStream(0, self.log)
        self._next = 0x7F00

    def Stream(self, device=None):  # noqa: N802  (torch's name)
        self._next += 0x10
        return FakeStream(self._next, self.log)

    def current_stream(self, device=None):
        return self.default


def test_the_stream_is_never_the_default_one_and_runs_are_fenced_both_ways():
    cuda = FakeCuda()
    stream = DeviceStream("cuda:0", cuda)
    assert stream.handle != 0
    with stream.fenced():
        cuda.log.append("run")
    assert cuda.log == [("wait", stream.handle, 0), "run", ("wait", 0, stream.handle)]


def test_a_stream_reporting_handle_0_is_refused():
    cuda = FakeCuda()
    cuda.Stream = lambda device=None: FakeStream(0, cuda.log)
    with pytest.raises(RuntimeError, match="handle 0"):
        DeviceStream("cuda:0", cuda)


@pytest.mark.parametrize("options", [cuda_options, tensorrt_options])
def test_providers_refuse_stream_0(options):
    with pytest.raises(ValueError, match="legacy default stream"):
        options(GpuOptions(stream=0))
    assert options(GpuOptions(stream=0x7F10))["user_compute_stream"] == str(0x7F10)


@pytest.fixture
def opened(monkeypatch):
    """cuda_factory with a fake torch.cuda (default stream 0) and the sessions' GpuOptions recorded."""
    cuda, sessions = FakeCuda(), []
    monkeypatch.setattr(sdxl_device, "check_gpu_provider", lambda provider, device_id: None)
    monkeypatch.setattr(sdxl_device, "DeviceStream", lambda device: DeviceStream(device, cuda))
    monkeypatch.setattr(sdxl_device, "open_session",
                        lambda path, target, options, gpu: sessions.append((path.stem, gpu)) or _FakeSession())
    return cuda, sessions


@pytest.mark.parametrize("target", [CUDA_EP, TRT_EP])
def test_every_sdxl_session_gets_the_dedicated_stream(opened, target):
    cuda, sessions = opened
    factory = sdxl_device.cuda_factory(target, 1)
    engines = {name: factory(Path(f"/e/{name}.onnx")) for name in ("text_encoder", "unet", "vae_decoder")}
    handles = {gpu.stream for _, gpu in sessions}
    assert len(handles) == 1 and 0 not in handles and None not in handles
    assert {gpu.device_id for _, gpu in sessions} == {1}
    for _, gpu in sessions:
        assert providers.providers_for(target, gpu)[0][1]["user_compute_stream"] != "0"
    assert all(engine._stream.handle in handles for engine in engines.values())


def test_cuda_graphs_per_shape_only_under_the_cuda_provider(opened):
    _, sessions = opened
    for target in (CUDA_EP, TRT_EP):
        factory = sdxl_device.cuda_factory(target, 0)
        factory(Path("/e/unet.onnx")), factory(Path("/e/vae_decoder.onnx"))
    graphs = [(stem, gpu.cuda_graph) for stem, gpu in sessions]
    assert graphs == [("unet", True), ("vae_decoder", False), ("unet", False), ("vae_decoder", False)]
    trt = providers.tensorrt_options(sessions[2][1])
    assert trt["trt_cuda_graph_enable"] == "False"


class _FakeSession:
    """An ORT session as TorchIoEngine drives it; run_with_iobinding records when it ran."""

    def __init__(self, log: list | None = None):
        self.log = log if log is not None else []

    def get_outputs(self):
        return [SimpleNamespace(name="y", type="tensor(float)")]

    def io_binding(self):
        return SimpleNamespace(bind_input=lambda *a: None, bind_output=lambda *a: None)

    def run_with_iobinding(self, binding, options):
        self.log.append("run")


def test_inputs_are_synchronized_before_and_outputs_after_every_run(monkeypatch):
    cuda = FakeCuda()
    stream = DeviceStream("cuda:0", cuda)
    session = _FakeSession(cuda.log)
    monkeypatch.setattr(sdxl_device, "_run_options", lambda graph_id: None)
    engine = sdxl_device.TorchIoEngine(session, torch.device("cpu"), cuda_graph=True, stream=stream)
    for _ in range(2):
        engine.run_tensors({"x": torch.from_numpy(np.ones((1, 2), np.float32))}, {"y": (1, 2)})
    fence = [("wait", stream.handle, 0), "run", ("wait", 0, stream.handle)]
    assert cuda.log == fence * 2


def _stub_graph(path: Path, elem: int) -> Path:
    """x [B, 2] float -> y = Cast(x) in `elem`: an engine whose output dtype is the one under test."""
    import onnx  # noqa: PLC0415
    from onnx import TensorProto, helper  # noqa: PLC0415

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])
    y = helper.make_tensor_value_info("y", elem, ["batch", 2])
    model = helper.make_model(helper.make_graph([helper.make_node("Cast", ["x"], ["y"], to=elem)], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_fp16_outputs_are_bound_in_their_own_dtype(tmp_path):
    import onnxruntime as ort  # noqa: PLC0415
    from onnx import TensorProto  # noqa: PLC0415

    session = ort.InferenceSession(str(_stub_graph(tmp_path / "h.onnx", TensorProto.FLOAT16)),
                                   providers=["CPUExecutionProvider"])
    engine = sdxl_device.TorchIoEngine(session, torch.device("cpu"), cuda_graph=True)
    x = torch.tensor([[1.5, -2.25]])
    out = engine.run_tensors({"x": x}, {"y": (1, 2)})["y"]
    assert out.dtype == torch.float16 and torch.equal(out, x.half())


def test_bf16_outputs_are_refused_at_load_naming_the_output(tmp_path):
    import onnxruntime as ort  # noqa: PLC0415
    from onnx import TensorProto  # noqa: PLC0415

    session = ort.InferenceSession(str(_stub_graph(tmp_path / "b.onnx", TensorProto.BFLOAT16)),
                                   providers=["CPUExecutionProvider"])
    with pytest.raises(TypeError, match=r"output y is tensor\(bfloat16\)"):
        sdxl_device.TorchIoEngine(session, torch.device("cpu"))
