"""The Triton shells of the embedding steps (model_repository/embedding_*/1/model.py) with a fake pb_utils:
one response per request, in order; caller mistakes as INVALID_ARG with the ClientError wire form."""
from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from builders.embeddings import demo_checkpoint
from builders.triton_config import TEMPLATES
from runtime.embeddings.params import EncoderParams
from runtime.embeddings.pooling import PoolingMode, PoolingSpec
from runtime.errors import ClientError


class FakeTensor:
    def __init__(self, name: str, array: np.ndarray):
        self._name, self._array = name, np.asarray(array)

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray:
        return self._array


class FakeError:
    INTERNAL, INVALID_ARG = "INTERNAL", "INVALID_ARG"

    def __init__(self, message: str, code: str = "INTERNAL"):
        self.message, self.code = message, code


class FakeResponse:
    def __init__(self, output_tensors=None, error=None):
        self.outputs = {t.name(): t.as_numpy() for t in output_tensors or []}
        self.error = error


def _fake_pb_utils() -> types.ModuleType:
    pb = types.ModuleType("triton_python_backend_utils")
    pb.Tensor, pb.TritonError, pb.InferenceResponse = FakeTensor, FakeError, FakeResponse
    pb.get_input_tensor_by_name = lambda request, name: request.get(name)
    pb.Logger = types.SimpleNamespace(log_error=lambda message: None)
    return pb


def _load_shell(template: str, monkeypatch):
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", _fake_pb_utils())
    spec = importlib.util.spec_from_file_location(f"shell_{template}", TEMPLATES / template / "1" / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TritonPythonModel()


def _request(**arrays) -> dict:
    return {name: FakeTensor(name, value) for name, value in arrays.items()}


class RowSumSession:
    def __init__(self, fail: bool = False):
        self.fail, self.calls = fail, 0

    def run(self, input_ids, attention_mask):
        self.calls += 1
        if self.fail:
            raise RuntimeError("engine broke")
        # [B, L, 2]: CLS pooling then reads (first id, 1)
        return np.stack([input_ids.astype(np.float32), np.ones_like(input_ids, dtype=np.float32)], axis=-1)


def _encoder(monkeypatch, session):
    model = _load_shell("embedding_encoder", monkeypatch)
    model.params = EncoderParams(PoolingSpec(PoolingMode.CLS, normalize=False), max_batch_tokens=4)
    model.session = session
    return model


def test_encoder_answers_each_merged_request_with_its_rows(monkeypatch):
    session = RowSumSession()
    model = _encoder(monkeypatch, session)
    requests = [_request(INPUT_IDS=np.array([[7, 1, 0], [3, 0, 0]]),
                         ATTENTION_MASK=np.array([[1, 1, 0], [1, 0, 0]])),
                _request(INPUT_IDS=np.array([[9, 9, 9, 9]]), ATTENTION_MASK=np.array([[1, 1, 1, 1]]))]
    responses = model.execute(requests)
    np.testing.assert_array_equal(responses[0].outputs["EMBEDDINGS"], [[7, 1], [3, 1]])
    np.testing.assert_array_equal(responses[1].outputs["EMBEDDINGS"], [[9, 1]])
    assert session.calls == 2  # one merge cut into length-sorted chunks of <= 4 padded tokens: [1, 2], [4]


def test_encoder_failure_fails_every_request_of_the_batch(monkeypatch):
    model = _encoder(monkeypatch, RowSumSession(fail=True))
    block = dict(INPUT_IDS=np.array([[5]]), ATTENTION_MASK=np.array([[1]]))
    responses = model.execute([_request(**block), _request(**block)])
    assert all(r.error.code == "INTERNAL" and "engine broke" in r.error.message for r in responses)


@pytest.fixture
def tokenizer_model(tmp_path, monkeypatch):
    shutil.copytree(demo_checkpoint(), tmp_path / "1" / "tokenizer",
                    ignore=shutil.ignore_patterns("*.safetensors", "*.bin"))
    model = _load_shell("embedding_tokenizer", monkeypatch)
    config = {"parameters": {"max_input_tokens": {"string_value": "8"}}}
    model.initialize({"model_config": json.dumps(config), "model_repository": str(tmp_path), "model_version": "1"})
    return model


def test_tokenizer_shell_outputs_and_client_errors(tokenizer_model):
    empty_ids = np.zeros((0, 0), dtype=np.int64)
    ok = _request(TEXT=np.array([b"hello world"], dtype=object), TOKEN_IDS=empty_ids, TRUNCATE=np.array([False]))
    too_long = _request(TEXT=np.array(["a b c d e f g h i".encode()], dtype=object), TOKEN_IDS=empty_ids,
                        TRUNCATE=np.array([False]))
    good, bad = tokenizer_model.execute([ok, too_long])
    assert good.outputs["TOKEN_COUNTS"].tolist() == [4] and good.outputs["INPUT_IDS"].shape == (1, 4)
    assert bad.error.code == "INVALID_ARG"
    err = ClientError.from_wire(bad.error.message)
    assert err.param == "input" and "11 tokens" in err.message and "8 tokens" in err.message
