"""Session code paths with onnxruntime-gpu installed (run inside .venv-ort-gpu by tests/unit/test_ort_gpu.py;
not named test_*.py: the main venv's collection must not pick it up).

On a machine without a GPU: a cpu entry runs on the CPU provider; a cuda entry fails at load naming the missing
device or library, never silently on the CPU.
"""
from __future__ import annotations

import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from runtime import providers
from runtime.embeddings.session import OrtEncoderSession
from runtime.gpu_probe import GpuUnavailable, provider_library_problem
from runtime.target import Device, EngineKind, EngineTarget

CUDA_EP = EngineTarget(Device.CUDA, EngineKind.ONNXRUNTIME_CUDA)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    """A tiny encoder-shaped graph: input_ids, attention_mask [B, L] -> states [B, L, 2]."""
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])
    mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"])
    out = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", 2])
    nodes = [helper.make_node("Add", ["input_ids", "attention_mask"], ["sum"]),
             helper.make_node("Cast", ["sum"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("Unsqueeze", ["f", "axis"], ["u"]),
             helper.make_node("Concat", ["u", "u"], ["last_hidden_state"], axis=-1)]
    axis = helper.make_tensor("axis", TensorProto.INT64, [1], [-1])
    model = helper.make_model(helper.make_graph(nodes, "g", [ids, mask], [out], [axis]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("enc") / "model.onnx"
    onnx.save(model, str(path))
    return path


def test_this_is_the_gpu_build():
    assert ort.__version__ == "1.20.2"
    assert {"TensorrtExecutionProvider", "CUDAExecutionProvider"} <= set(ort.get_available_providers())


def test_cpu_entry_runs_on_the_cpu_provider(encoder):
    session = OrtEncoderSession(encoder)
    assert session._session.get_providers() == ["CPUExecutionProvider"]
    ids = np.array([[3, 4]], np.int64)
    np.testing.assert_array_equal(session.run(ids, np.ones_like(ids))[0, :, 0], [4.0, 5.0])


@pytest.mark.parametrize("engine", [EngineKind.ONNXRUNTIME_CUDA, EngineKind.ONNXRUNTIME_TENSORRT])
def test_cuda_entry_fails_at_load_naming_the_missing_gpu(encoder, engine):
    with pytest.raises(GpuUnavailable, match="libcuda.so.1.*no usable GPU"):
        OrtEncoderSession(encoder, target=EngineTarget(Device.CUDA, engine))


def test_llm_cuda_session_fails_before_touching_torch_cuda(encoder):
    from runtime.llm.slot_session import CudaSlotSession  # noqa: PLC0415

    with pytest.raises(GpuUnavailable, match="libcuda.so.1"):
        CudaSlotSession(encoder, 4, 64, CUDA_EP)


def test_llm_graph_loads_and_agrees_under_this_onnxruntime():
    """The builders' LLM graph (onnxruntime-genai's, stamped for 1.20) on the GPU image's onnxruntime, CPU
    provider: same logits as the CPU stack's newer onnxruntime (tests/unit/test_ort_gpu.py wrote them)."""
    import os  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from runtime.llm.slot_session import SlotSession  # noqa: PLC0415

    folder = Path(os.environ["LLM_GRAPHS"]) / "fp32"
    expected = np.load(folder / "expected.npy")
    session = SlotSession(folder / "model.onnx", slots=2, max_len=64)
    got = np.stack([session.prefill(1, [128000, 5, 6, 7]), session.decode([1], [9])[0]])
    np.testing.assert_allclose(got, expected, atol=1e-4)


@pytest.mark.parametrize("precision", ["fp16", "int4"])
def test_llm_cuda_graphs_fit_this_onnxruntimes_operator_schemas(precision):
    """`--device cuda` graphs need a GPU to run; what loading them needs of 1.20 is checked here: every node's
    operator exists at the graph's opset, with attributes and an input count that 1.20's schema declares."""
    import os  # noqa: PLC0415

    from onnxruntime.capi.onnxruntime_pybind11_state import get_all_operator_schema  # noqa: PLC0415

    model = onnx.load(os.path.join(os.environ["LLM_GRAPHS"], f"cuda-{precision}", "model.onnx"),
                      load_external_data=False)
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    schemas: dict = {}
    for s in get_all_operator_schema():
        schemas.setdefault((s.domain or "ai.onnx", s.name), []).append(s)
    problems = []
    for node in model.graph.node:
        domain = node.domain or "ai.onnx"
        known = [s for s in schemas.get((domain, node.op_type), []) if s.since_version <= opsets[domain]]
        if not known:
            problems.append(f"{node.op_type} ({domain} opset {opsets[domain]}) unknown")
            continue
        schema = max(known, key=lambda s: s.since_version)
        unknown = {a.name for a in node.attribute} - set(schema.attributes)
        variadic = schema.inputs and schema.inputs[-1].option.name == "Variadic"
        if unknown or (not variadic and len(node.input) > len(schema.inputs)):
            problems.append(f"{node.name}: attributes {sorted(unknown)}, {len(node.input)} inputs")
    assert opsets["ai.onnx"] <= 21 and not problems, problems


def test_provider_library_names_the_missing_cuda_library():
    for provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
        problem = provider_library_problem(provider) or ""
        assert re.search(r"lib(cu\w+|nvinfer\w*)\.so\.\d+: cannot open shared object file", problem), problem


def test_a_provider_that_onnxruntime_drops_is_an_error_not_a_fallback(encoder, monkeypatch):
    """Past the probes (as on a node whose driver answers but a library is missing), ORT 1.20 falls back to
    the CPU with a printed warning; create_session turns that into an error naming the provider."""
    monkeypatch.setattr(providers, "check_gpu_provider", lambda *a, **k: None)
    with pytest.raises(GpuUnavailable, match="dropped CUDAExecutionProvider"):
        providers.create_session(encoder, providers.providers_for(CUDA_EP))
