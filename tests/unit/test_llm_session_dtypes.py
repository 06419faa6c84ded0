"""The engine session on half-precision caches (fp16 / bf16, what GPU graphs carry), with stub graphs on the CPU
provider: the cache buffers, the I/O binding and the logits conversion take every dtype the builders write."""
from __future__ import annotations

import json

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from runtime.llm.slot_session import SlotSession, TorchSlotSession

V, H, D, L = 11, 2, 16, 32


def stub_graph(folder, element: int):
    """logits[b, 0, :] = the row's last input id (in the cache's dtype), for logits_to_keep last positions;
    present = past (the shared buffer)."""
    t = lambda name, elem, shape: helper.make_tensor_value_info(name, elem, shape)  # noqa: E731
    inputs = [t("input_ids", TensorProto.INT64, ["b", "s"]), t("attention_mask", TensorProto.INT64, ["b", "t"]),
              t("past_key_values.0.key", element, ["b", H, "p", D]), t("past_key_values.0.value", element, ["b", H, "p", D]),
              t("logits_to_keep", TensorProto.INT64, [1])]
    outputs = [t("logits", element, ["b", "k", V]), t("present.0.key", element, ["b", H, "p", D]),
               t("present.0.value", element, ["b", H, "p", D])]
    consts = [helper.make_tensor("end", TensorProto.INT64, [1], [2**62]),
              helper.make_tensor("axis", TensorProto.INT64, [1], [1]), helper.make_tensor("two", TensorProto.INT64, [1], [2]),
              helper.make_tensor("reps", TensorProto.INT64, [3], [1, 1, V])]
    nodes = [helper.make_node("Shape", ["input_ids"], ["length"], start=1, end=2),
             helper.make_node("Sub", ["length", "logits_to_keep"], ["start"]),
             helper.make_node("Slice", ["input_ids", "start", "end", "axis"], ["last"]),
             helper.make_node("Unsqueeze", ["last", "two"], ["last3"]),
             helper.make_node("Cast", ["last3"], ["lastf"], to=TensorProto.FLOAT),
             helper.make_node("Tile", ["lastf", "reps"], ["tiled"]),
             helper.make_node("Cast", ["tiled"], ["logits"], to=element),
             helper.make_node("Identity", ["past_key_values.0.key"], ["present.0.key"]),
             helper.make_node("Identity", ["past_key_values.0.value"], ["present.0.value"])]
    model = helper.make_model(helper.make_graph(nodes, "stub", inputs, outputs, consts),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    folder.mkdir()
    onnx.save(model, str(folder / "model.onnx"))
    config = {"model": {"context_length": L, "decoder": {"num_hidden_layers": 1, "num_key_value_heads": H, "head_size": D}}}
    (folder / "genai_config.json").write_text(json.dumps(config))
    return folder / "model.onnx"


@pytest.mark.parametrize("element,dtype", [(TensorProto.FLOAT16, np.float16), (TensorProto.BFLOAT16, ml_dtypes.bfloat16)])
@pytest.mark.parametrize("session_class", [SlotSession, TorchSlotSession])
def test_half_precision_caches_load_and_run(tmp_path, element, dtype, session_class):
    session = session_class(stub_graph(tmp_path / "g", element), slots=3, max_len=L)
    assert session.kv_cache_bytes == 2 * 3 * H * L * D * np.dtype(dtype).itemsize
    host = lambda x: x if isinstance(x, np.ndarray) else x.numpy()  # noqa: E731  (torch logits stay on their device)
    logits = host(session.prefill(1, [4, 5, 6]))
    assert logits.dtype == np.float32 and np.all(logits == 6)
    np.testing.assert_array_equal(host(session.decode([0, 2], [3, 9])), [[3] * V, [9] * V])


def test_every_engine_run_is_fenced_against_torchs_stream(tmp_path):
    """The GPU engine's runs (prefill chunks, decode steps) each wait for torch's stream (cache copies, sampling)
    and make it wait for theirs: TorchSlotSession with a fake torch.cuda whose current stream has handle 0."""
    import torch

    from runtime.cuda_stream import DeviceStream
    from tests.unit.test_cuda_stream import FakeCuda

    cuda = FakeCuda()
    stream = DeviceStream(torch.device("cpu"), cuda)
    session = TorchSlotSession(stub_graph(tmp_path / "g", TensorProto.FLOAT16), slots=2, max_len=L, stream=stream,
                               prefill_chunk=2)
    session.prefill(0, [4, 5, 6])  # two chunks
    session.copy(0, [1], 3)
    session.decode([0, 1], [7, 8])
    fence = [("wait", stream.handle, 0), ("wait", 0, stream.handle)]
    assert cuda.log == fence * 3
