"""Append pooling (+ L2) to an encoder graph, so a GPU engine returns [B, H] vectors and not [B, L, H] states.

On a GPU the token states never leave the device: TensorRT compiles the pooling with the encoder and only the
pooled vectors are copied back. Same math as runtime/embeddings/pooling.py (mean over real tokens, clipped
denominators), tested against it on CPU.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime.embeddings.pooling import PoolingMode, PoolingSpec

POOLED_OUTPUT = "embeddings"


def add_pooling(src: Path, dst: Path, spec: PoolingSpec) -> Path:
    import onnx  # noqa: PLC0415
    from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415

    model = onnx.load(str(src), load_external_data=False)
    graph = model.graph
    states = graph.output[0].name  # last_hidden_state [B, L, H]
    hidden = graph.output[0].type.tensor_type.shape.dim[2]
    const = [numpy_helper.from_array(np.array(v, dtype=d), n) for n, v, d in
             (("pool_axis1", [1], np.int64), ("pool_axis_last", [-1], np.int64), ("pool_zero", [0], np.int64),
              ("pool_eps_count", 1e-9, np.float32), ("pool_eps_norm", 1e-12, np.float32))]
    graph.initializer.extend(const)
    nodes = _mean_nodes(helper, states) if spec.mode is PoolingMode.MEAN else _cls_nodes(helper, states)
    pooled = nodes[-1].output[0]
    if spec.normalize:
        nodes += [helper.make_node("ReduceL2", [pooled], ["pool_norm"], axes=[-1], keepdims=1),
                  helper.make_node("Max", ["pool_norm", "pool_eps_norm"], ["pool_norm_clipped"]),
                  helper.make_node("Div", [pooled, "pool_norm_clipped"], ["pool_normalized"])]
    nodes.append(helper.make_node("Cast", [nodes[-1].output[0]], [POOLED_OUTPUT], to=TensorProto.FLOAT))
    graph.node.extend(nodes)
    del graph.output[:]
    out = helper.make_tensor_value_info(POOLED_OUTPUT, TensorProto.FLOAT, ["batch", None])
    out.type.tensor_type.shape.dim[1].CopyFrom(hidden)
    graph.output.append(out)
    onnx.save(model, str(dst))
    return dst


def _mean_nodes(helper, states: str) -> list:
    # states [B, L, H] (fp32 or fp16), mask [B, L] int64 -> sum(states * mask) / max(sum(mask), eps): [B, H]
    return [helper.make_node("CastLike", ["attention_mask", states], ["pool_mask"]),
            helper.make_node("Unsqueeze", ["pool_mask", "pool_axis_last"], ["pool_weights"]),  # [B, L, 1]
            helper.make_node("Mul", [states, "pool_weights"], ["pool_masked"]),
            helper.make_node("ReduceSum", ["pool_masked", "pool_axis1"], ["pool_sum"], keepdims=0),  # [B, H]
            helper.make_node("ReduceSum", ["pool_weights", "pool_axis1"], ["pool_count"], keepdims=0),  # [B, 1]
            helper.make_node("CastLike", ["pool_eps_count", "pool_count"], ["pool_eps"]),
            helper.make_node("Max", ["pool_count", "pool_eps"], ["pool_count_clipped"]),
            helper.make_node("Div", ["pool_sum", "pool_count_clipped"], ["pool_mean"])]


def _cls_nodes(helper, states: str) -> list:
    return [helper.make_node("Gather", [states, "pool_zero"], ["pool_first"], axis=1),  # [B, 1, H]
            helper.make_node("Squeeze", ["pool_first", "pool_axis1"], ["pool_cls"])]
