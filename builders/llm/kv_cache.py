"""An int8 KV cache for the CPU decoder: calibrate per-channel scales, then store keys and values as int8.

ONNX Runtime's GroupQueryAttention keeps a quantized cache itself (`k_quant_type`/`v_quant_type` PER_CHANNEL,
`kv_cache_bit_width` 8, fp32 `k_scale`/`v_scale` [kv_heads, 1, head_dim]): it quantizes the step's new keys and
values as it writes them into the shared past/present buffer and dequantizes what it reads, saturating at
+-127. A decode step then reads a quarter of the fp32 cache's bytes, which is what a long context's step costs on
a CPU; the buffers are a quarter of the size too. The CUDA graphs keep their fp16 cache: the GPU image's
onnxruntime-gpu 1.20.2 has no quantized cache in this operator.

Scales come from the model itself: the fp32-cache graph prefills a fixed calibration text, and each channel's
absolute maximum over every position, with a quarter's headroom, becomes 127 (TensorRT-LLM's int8 KV calibration does the same with its own
text). A value past a channel's calibrated range saturates instead of wrapping.
"""
from __future__ import annotations

from enum import Enum
from pathlib import Path

import numpy as np

from builders.progress import BuildError
from runtime.target import Device

NO_GPU_QUANTIZED_CACHE = "the GPU image's onnxruntime-gpu 1.20.2 has no quantized GroupQueryAttention cache"
CALIBRATION_TOKENS = 512
INT8_MAX = 127
MARGIN = 1.25  # headroom over the calibrated range: prompts unlike the calibration text reach further
MIN_SCALE = 1e-8  # a channel that stays zero in calibration: any scale reproduces it


class KvCacheDtype(str, Enum):
    AUTO = "auto"  # the graph's activation dtype: fp32 on CPU, fp16/bf16 on CUDA
    INT8 = "int8"


def check_kv_cache_dtype(dtype: KvCacheDtype, device: Device) -> None:
    if dtype is KvCacheDtype.INT8 and device is not Device.CPU:
        raise BuildError(f"--kv-cache-dtype int8 runs on cpu only: {NO_GPU_QUANTIZED_CACHE}")


# English prose, code, numbers and a chat turn: the kinds of text whose keys and values set each channel's range
CALIBRATION_TEXT = (
    "The committee met on Tuesday to review the budget for the coming year. Revenue rose 4.2% to $18.6 million, "
    "while operating costs fell slightly. Several members asked whether the new warehouse in Rotterdam would be "
    "ready before the winter shipping season; the director said construction was on schedule.\n"
    "def fibonacci(n: int) -> list[int]:\n    seq = [0, 1]\n    while len(seq) < n:\n"
    "        seq.append(seq[-1] + seq[-2])\n    return seq[:n]\n"
    "user: Can you explain how photosynthesis works, briefly?\nassistant: Plants capture light with chlorophyll "
    "and use its energy to turn carbon dioxide and water into glucose, releasing oxygen as a by-product.\n"
    "Q: What is 17 * 23? A: 391. Q: Name three rivers in Africa. A: The Nile, the Congo and the Niger.\n"
    "In 1969, Apollo 11 landed on the Moon; Neil Armstrong and Buzz Aldrin walked on its surface for about two "
    "and a half hours while Michael Collins orbited above. {\"id\": 42, \"tags\": [\"alpha\", \"beta\"], "
    "\"ok\": true} SELECT name, COUNT(*) FROM orders GROUP BY name ORDER BY 2 DESC LIMIT 10;\n"
)


def calibration_tokens(checkpoint: Path, max_len: int) -> list[int]:
    """The calibration text, then token ids spread over the whole vocabulary (rare tokens' keys and values reach
    past text's), max_len in all."""
    from tokenizers import Tokenizer  # noqa: PLC0415

    tokenizer = Tokenizer.from_file(str(Path(checkpoint) / "tokenizer.json"))
    text = tokenizer.encode(CALIBRATION_TEXT).ids[:max_len // 2]
    spread = max_len - len(text)
    vocab = tokenizer.get_vocab_size()
    return text + [(i * 7919) % vocab for i in range(spread)]


def calibrate(model_path: Path, tokens: list[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per layer, each key and value channel's absolute maximum over the prefilled tokens: [kv_heads, 1, head_dim]."""
    from runtime.llm.slot_session import SlotSession  # noqa: PLC0415

    session = SlotSession(model_path, slots=1, max_len=len(tokens))
    session.prefill(0, tokens)
    amax = [np.abs(a[0, :, :len(tokens)]).max(axis=1, keepdims=True) for a in session.buffers.arrays]
    by_name = dict(zip(session.past_names, amax))
    layers = len(session.past_names) // 2
    return ([by_name[f"past_key_values.{i}.key"] for i in range(layers)],
            [by_name[f"past_key_values.{i}.value"] for i in range(layers)])


def quantize_cache(graph, key_amax: list[np.ndarray], value_amax: list[np.ndarray]) -> None:
    """Every GroupQueryAttention stores its cache as int8 with the scales amax / 127; past and present turn int8."""
    from onnx import TensorProto, helper, numpy_helper  # noqa: PLC0415

    nodes = [n for n in graph.node if n.op_type == "GroupQueryAttention"]
    if len(nodes) != len(key_amax):
        raise BuildError(f"{len(nodes)} attention nodes for {len(key_amax)} calibrated layers")
    for node in nodes:
        layer = int(node.input[3].split(".")[1])  # past_key_values.{layer}.key
        scales = []
        for kind, amax in (("key", key_amax[layer]), ("value", value_amax[layer])):
            scale = np.maximum(amax.astype(np.float32) * MARGIN / INT8_MAX, MIN_SCALE)
            name = f"past_key_values.{layer}.{kind}/scale"
            graph.initializer.append(numpy_helper.from_array(scale, name))
            scales.append(name)
        del node.input[9:]
        node.input.extend(["", "", "", *scales])  # position_ids, attention_bias, head_sink: absent
        node.attribute.extend([helper.make_attribute("k_quant_type", "PER_CHANNEL"),
                               helper.make_attribute("v_quant_type", "PER_CHANNEL"),
                               helper.make_attribute("kv_cache_bit_width", 8)])
    for value in [*graph.input, *graph.output]:
        if value.name.startswith(("past_key_values.", "present.")):
            value.type.tensor_type.elem_type = TensorProto.INT8
