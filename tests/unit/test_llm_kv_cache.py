"""The int8 KV cache (builders/llm/kv_cache.py) on a real export of a tiny Llama-3: the attention keeps its cache
in int8 at a quarter of fp32's bytes, follows the fp32 cache's logits, and slots fork and reuse prefixes over it.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from builders.llm.export import export_decoder
from builders.llm.kv_cache import KvCacheDtype, calibration_tokens
from builders.progress import BuildError
from runtime.llm.slot_session import SlotSession
from runtime.target import Device, Precision
from tests.unit.tiny_llm import BOS, MAX_LEN, SPEC

PROMPT = [BOS] + list(range(500, 540))


@pytest.fixture(scope="module")
def graphs(tiny_llama, tmp_path_factory):
    root = tmp_path_factory.mktemp("graphs")
    return {d: export_decoder(tiny_llama, root / d.value, Precision.FP32, kv_cache_dtype=d) for d in KvCacheDtype}


def test_the_attention_keeps_an_int8_cache_with_per_channel_scales(graphs):
    graph = onnx.load(str(graphs[KvCacheDtype.INT8]), load_external_data=False).graph
    caches = [v for v in [*graph.input, *graph.output] if v.name.startswith(("past_key_values.", "present."))]
    assert caches and {v.type.tensor_type.elem_type for v in caches} == {onnx.TensorProto.INT8}
    scales = {i.name: numpy_helper.to_array(i) for i in graph.initializer if i.name.endswith("/scale")}
    for node in (n for n in graph.node if n.op_type == "GroupQueryAttention"):
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert (attrs["k_quant_type"], attrs["v_quant_type"], attrs["kv_cache_bit_width"]) == (
            b"PER_CHANNEL", b"PER_CHANNEL", 8)
        for name in node.input[12:14]:
            assert scales[name].shape == (SPEC.num_kv_heads, 1, SPEC.hidden_size // SPEC.num_heads)
            assert (scales[name] > 0).all()


def test_the_int8_cache_is_a_quarter_of_fp32s(graphs):
    fp32, int8 = (SlotSession(graphs[d], slots=4, max_len=MAX_LEN) for d in KvCacheDtype)
    assert int8.cache_type == "tensor(int8)"
    assert int8.kv_cache_bytes * 4 == fp32.kv_cache_bytes
    assert {a.dtype for a in int8.buffers.arrays} == {np.dtype(np.int8)}


def test_int8_cache_logits_follow_fp32s(graphs):
    """Teacher-forced on fp32's greedy tokens, so that one near-tie does not send the two down different texts."""
    fp32, int8 = (SlotSession(graphs[d], slots=1, max_len=MAX_LEN) for d in KvCacheDtype)
    expected, got = [fp32.prefill(0, PROMPT)], [int8.prefill(0, PROMPT)]
    for _ in range(48):
        token = int(expected[-1].argmax())
        expected.append(fp32.decode([0], [token])[0].copy())
        got.append(int8.decode([0], [token])[0].copy())
    corr = [np.corrcoef(e, g)[0, 1] for e, g in zip(expected, got)]
    agree = np.mean([e.argmax() == g.argmax() for e, g in zip(expected, got)])
    assert np.median(corr) > 0.99 and min(corr) > 0.9, (np.median(corr), min(corr))
    assert agree >= 0.75, agree  # random weights: logits near ties are common; 0.84 when written


def test_slots_fork_and_reuse_prefixes_over_an_int8_cache(graphs):
    session = SlotSession(graphs[KvCacheDtype.INT8], slots=3, max_len=MAX_LEN)
    fresh = session.prefill(0, PROMPT)
    session.copy(0, [1], 32)  # a reused 32-token prefix: int8 rows copied as they are
    reused = session.prefill(1, PROMPT, start=32)
    assert np.corrcoef(fresh, reused)[0, 1] > 0.999
    session.copy(0, [2], len(PROMPT))  # n > 1: a fork decodes from the same cache
    steps = session.decode([0, 2], [7, 7])
    np.testing.assert_array_equal(steps[0], steps[1])


def test_calibration_covers_text_and_the_whole_vocabulary(tiny_llama):
    tokens = calibration_tokens(tiny_llama, 256)
    assert len(tokens) == 256 and max(tokens) > 100_000  # the spread half reaches the vocabulary's end


def test_an_int8_cache_on_cuda_is_refused_before_any_export(tiny_llama, tmp_path):
    with pytest.raises(BuildError, match="int8 runs on cpu only"):
        export_decoder(tiny_llama, tmp_path / "out", Precision.FP16, Device.CUDA, kv_cache_dtype=KvCacheDtype.INT8)
    assert not (tmp_path / "out").exists()
