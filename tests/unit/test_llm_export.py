"""ONNX export of a tiny Llama-3 (external data forced, fp16) and the ORT session's batch bookkeeping:
a sequence's logits do not depend on who joins, leaves or forks around it."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from builders.llm.export import EXTERNAL_DATA_FILE, export_decoder, load_checkpoint
from builders.llm.tiny import TinySpec, make_tiny_llama
from builders.progress import BuildError
from runtime.llm.ort_session import OrtSession

SPEC = TinySpec(seed=1, hidden_size=32, intermediate_size=64, max_model_len=256,
                tie_word_embeddings=True)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_tiny_llama(tmp_path_factory.mktemp("ckpt"), SPEC)


@pytest.fixture(scope="module")
def external(checkpoint, tmp_path_factory):
    """fp32 export with external data forced (the >2 GB path, on a small model)."""
    return export_decoder(load_checkpoint(checkpoint, "fp32"), tmp_path_factory.mktemp("onnx"), external_data=True)


def test_external_data_holds_every_weight(checkpoint, external):
    proto = onnx.load(str(external), load_external_data=False)
    big = [t for t in proto.graph.initializer if np.prod(t.dims) >= 16]
    assert big and all(t.data_location == onnx.TensorProto.EXTERNAL for t in big)
    assert {e.value for t in big for e in t.external_data if e.key == "location"} == {EXTERNAL_DATA_FILE}
    weights = sum(p.numel() * 4 for p in load_checkpoint(checkpoint, "fp32").parameters())  # tied: counted once
    assert (external.parent / EXTERNAL_DATA_FILE).stat().st_size >= 0.99 * weights > external.stat().st_size
    assert sorted(p.name for p in external.parent.iterdir()) == ["model.onnx", EXTERNAL_DATA_FILE]


def test_onnx_matches_torch_on_a_left_padded_batch(checkpoint, external):
    import torch

    model = load_checkpoint(checkpoint, "fp32")
    prompts = [[3, 50, 70, 9, 11], [3, 8]]
    session = OrtSession(external)
    logits = session.prefill([0, 1], prompts)
    for row, prompt in zip(logits, prompts):
        with torch.no_grad():
            expected = model(torch.tensor([prompt])).logits[0, -1].numpy()
        np.testing.assert_allclose(row, expected, atol=1e-4)


def test_logits_do_not_depend_on_batch_neighbours(external):
    batched, solo = OrtSession(external), OrtSession(external)
    prompt = [3, 40, 41, 42]
    got, want = batched.prefill([5], [prompt]), solo.prefill([0], [prompt])
    tokens = []
    for step in range(12):
        token = int(want[0].argmax())
        tokens.append(token)
        if step == 2:
            batched.prefill([1, 2], [[3] * 9, [3, 7]])  # two longer/shorter prompts join
        if step == 5:
            batched.fork(1, [3])
        if step == 8:
            batched.release(1)
            batched.release(2)  # leave: the padding columns of the rest get trimmed
        slots = [s for s in batched.rows if s >= 0]
        out = batched.decode(slots, [token if s == 5 else 4 for s in slots])
        got = out[[slots.index(5)]]
        want = solo.decode([0], [token])
        np.testing.assert_allclose(got, want, atol=3e-5)  # float reassociation over 128,256 logits
    assert batched.mask.shape[1] < len(prompt) + 12 + 9  # trimmed after the long prompt left


def test_decode_must_cover_every_live_slot(external):
    session = OrtSession(external)
    session.prefill([0, 1], [[3, 4], [3, 5]])
    with pytest.raises(ValueError):
        session.decode([0], [6])


def test_fp16_export_has_half_cache(checkpoint, tmp_path):
    path = export_decoder(load_checkpoint(checkpoint, "fp16"), tmp_path)
    graph = onnx.load(str(path)).graph
    types = {i.name: i.type.tensor_type.elem_type for i in graph.input}
    assert types["past_key_values.0.key"] == onnx.TensorProto.FLOAT16
    assert types["input_ids"] == onnx.TensorProto.INT64


def test_unsupported_architecture_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(BuildError, match="unsupported architecture"):
        load_checkpoint(tmp_path, "fp32")
