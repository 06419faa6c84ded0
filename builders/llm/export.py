"""Llama checkpoint -> the decoder graph runtime/llm/slot_session.py drives: onnxruntime-genai's model builder.

The builder (onnxruntime-genai 0.18, a build-time dependency) writes ONNX Runtime's fused LLM graph from a Hugging
Face checkpoint: GroupQueryAttention with rotary inside and past/present sharing one buffer, SimplifiedLayerNorm
and SkipSimplifiedLayerNorm, MatMulNBits for int4/int8 weights. Graph I/O:
  input_ids [batch, new] int64, attention_mask [batch, total] int64 (row sums: each row's length),
  past_key_values.{i}.key / .value [batch, kv_heads, max_len, head_dim] -> present.{i}.key / .value (same buffer),
  logits_to_keep [1] int64 (1: the last position's logits; 0: none, the layers only),
  logits [batch, logits_to_keep, vocab]
plus genai_config.json (layers, heads, head size, context length) beside model.onnx.

Where it falls short and we change its output:
- its LM head runs on every position of a prompt (a 1,400-token prompt through a 128,256-token head is most of
  the prefill's work); the generator needs the last position at most, so keep_last_positions() puts a Slice in
  front of the head, sized by a `logits_to_keep` input (1, or 0 for no head at all);
- with tied embeddings (Llama-3.2) the embedding lookup reads the LM head's weights. ONNX Runtime prepacks the
  head's weights for its matmul and must then keep the original as well (a second resident copy of the largest
  matrix, or a folded transposed one); own_embedding() gives the lookup its own copy in the data file, in a
  row-per-token layout, so that only the rows of tokens seen become resident.

The builder imports its own internal package as `builders`, which our package of the same name would shadow:
it runs in a subprocess whose working directory is outside this repository.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from builders.llm.kv_cache import (CALIBRATION_TOKENS, KvCacheDtype, calibrate, calibration_tokens,
                                   check_kv_cache_dtype, quantize_cache)
from builders.onnx_export import Exported
from builders.progress import BuildError
from runtime.llm.slot_session import GENAI_CONFIG, LOGITS_TO_KEEP
from runtime.target import Device, Precision

SUPPORTED_ARCHITECTURES = {"LlamaForCausalLM"}
MODEL_FILE = "model.onnx"
GRAPH_FILES = (MODEL_FILE, MODEL_FILE + ".data", GENAI_CONFIG)
# onnxruntime-genai's valid precision / execution provider pairs for a Llama decoder
# CUDA: no int8, whose MatMulNBits kernels (8 bits) arrived after the GPU image's onnxruntime-gpu 1.20.2
PRECISIONS = {Device.CPU: (Precision.FP32, Precision.INT8, Precision.INT4),
              Device.CUDA: (Precision.FP16, Precision.BF16, Precision.FP32, Precision.INT4)}
GPU_IMAGE_OPSET = 21  # onnxruntime-gpu 1.20.2 (the GPU image) loads ai.onnx opsets up to 21
LM_HEAD_OPS = {"MatMul", "MatMulNBits", "Gemm"}


def check_checkpoint(checkpoint: Path) -> dict:
    path = Path(checkpoint) / "config.json"
    if not path.exists():
        raise BuildError(f"{checkpoint}: not a Hugging Face checkpoint directory (no config.json)")
    config = json.loads(path.read_text())
    archs = set(config.get("architectures") or [])
    if config.get("model_type") != "llama" or (archs and not archs & SUPPORTED_ARCHITECTURES):
        raise BuildError(f"unsupported architecture {sorted(archs) or config.get('model_type')!r}: the llm builder "
                         f"exports {', '.join(sorted(SUPPORTED_ARCHITECTURES))} (Llama-3 family) checkpoints")
    return config


def check_precision(precision: Precision, device: Device) -> None:
    if precision not in PRECISIONS[device]:
        raise BuildError(f"the LLM in {precision.value} does not run on {device.value} (choose one of "
                         f"{', '.join(p.value for p in PRECISIONS[device])})")


def export_decoder(checkpoint: Path, out_dir: Path, precision: Precision = Precision.FP32,
                   device: Device = Device.CPU, work: Path | None = None,
                   kv_cache_dtype: KvCacheDtype = KvCacheDtype.AUTO) -> Path:
    """Write out_dir/model.onnx (+ .data, genai_config.json) for the checkpoint in `precision` on `device`."""
    config = check_checkpoint(checkpoint)
    check_precision(precision, device)
    check_kv_cache_dtype(kv_cache_dtype, device)
    out_dir, work = Path(out_dir), Path(work or out_dir.parent / "genai-work")
    raw = work / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    _run_builder(Path(checkpoint).resolve(), raw.resolve(), precision, device, work.resolve())
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in GRAPH_FILES:  # the builder also copies the tokenizer: the repository takes the checkpoint's own
        if (raw / name).exists():
            os.replace(raw / name, out_dir / name)
    import onnx  # noqa: PLC0415

    path = out_dir / MODEL_FILE
    model = onnx.load(str(path), load_external_data=False)  # the graph only: the weights stay in the data file
    keep_last_positions(model.graph)
    own_embedding(model.graph, path, plain=device is Device.CUDA)
    for_onnxruntime_1_20(model)
    onnx.save(model, str(path))
    if kv_cache_dtype is KvCacheDtype.INT8:
        tokens = calibration_tokens(checkpoint, min(CALIBRATION_TOKENS, config["max_position_embeddings"]))
        key_amax, value_amax = calibrate(path, tokens)  # the graph as saved, with its fp32 cache
        quantize_cache(model.graph, key_amax, value_amax)
        onnx.save(model, str(path))
    return path


GENAI_PYTHON = "ONNXRUNTIME_GENAI_PYTHON"  # a python with onnxruntime-genai (default: this one)


def _run_builder(checkpoint: Path, out: Path, precision: Precision, device: Device, work: Path) -> None:
    """The builder's package loads onnxruntime >= 1.31: an environment with an older onnxruntime (the GPU image's
    1.20.2) names another python that has it."""
    python = os.environ.get(GENAI_PYTHON) or sys.executable
    cmd = [python, "-m", "onnxruntime_genai.models.builder", "-i", str(checkpoint), "-o", str(out),
           "-p", precision.value, "-e", device.value, "-c", str(work / "hf-cache")]
    done = subprocess.run(cmd, cwd=work, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
    if done.returncode != 0 or not (out / MODEL_FILE).exists():
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
        raise BuildError(f"onnxruntime-genai's model builder failed (exit {done.returncode}):\n{tail}")


def keep_last_positions(graph) -> None:
    """Feed the LM head the last `logits_to_keep` positions' hidden states only (Hugging Face's argument of the
    same name): 1 gives a prompt's next-token logits [batch, 1, vocab]; 0 runs the layers alone, for a prompt whose
    last token goes through a decode step with the running sequences instead of its own pass over the head."""
    from onnx import TensorProto, helper  # noqa: PLC0415

    head = _lm_head(graph)
    hidden, kept = head.input[0], head.input[0] + "/kept_positions"
    graph.input.append(helper.make_tensor_value_info(LOGITS_TO_KEEP, TensorProto.INT64, [1]))
    consts = [helper.make_tensor(f"{kept}/{k}", TensorProto.INT64, [1], [v]) for k, v in (("ends", 2**62), ("axes", 1))]
    graph.initializer.extend(consts)
    nodes = [helper.make_node("Shape", [hidden], [f"{kept}/length"], start=1, end=2),
             helper.make_node("Sub", [f"{kept}/length", LOGITS_TO_KEEP], [f"{kept}/starts"]),
             helper.make_node("Slice", [hidden, f"{kept}/starts", *(c.name for c in consts)], [kept])]
    head.input[0] = kept
    at = list(graph.node).index(head)
    for i, node in enumerate(nodes):
        node.name = f"/lm_head/keep_positions/{node.op_type}"
        graph.node.insert(at + i, node)
    logits = next(o for o in graph.output if o.name == "logits")
    logits.type.tensor_type.shape.dim[1].Clear()
    logits.type.tensor_type.shape.dim[1].dim_param = LOGITS_TO_KEEP


def for_onnxruntime_1_20(model) -> None:
    """Loadable by the GPU image's onnxruntime-gpu 1.20.2 as well as the CPU stack's newer onnxruntime: the
    builder stamps ai.onnx opset 22, whose changes to the operators it emits are only wider type lists (bfloat16),
    and writes absent trailing optional inputs as empty names, past the input lists 1.20's contrib schemas
    declare (GroupQueryAttention: 9)."""
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = min(opset.version, GPU_IMAGE_OPSET)
    for node in model.graph.node:
        while node.input and node.input[-1] == "":
            node.input.pop()


DATA_ALIGN = 64 * 1024  # ONNX Runtime memory-maps external initializers at aligned offsets


def own_embedding(graph, path: Path, plain: bool = False) -> None:
    """The embedding lookup on its own initializers when it shares the LM head's (tied embeddings). `plain`: a
    4-bit lookup (GatherBlockQuantized) becomes a Gather over its dequantized table, for onnxruntime 1.20 (the
    GPU image), whose GatherBlockQuantized takes int4 tensors, not the builder's packed uint8. `path`: the graph's
    file, beside whose data file the new tables go."""
    lookup = next(n for n in graph.node if n.op_type in ("Gather", "GatherBlockQuantized") and "input_ids" in n.input)
    head_inputs = set(_lm_head(graph).input)
    producer = {out: node for node in graph.node for out in node.output}
    shared = {}  # lookup input index -> its array (the head's weights, or a view of them)
    for i, name in enumerate(lookup.input):
        node = producer.get(name)
        if name in head_inputs:  # quantized: the head's blocks or scales, read in place
            shared[i] = _external_array(graph, name, path.parent)
        elif node is not None and node.op_type in ("Transpose", "Reshape") and node.input[0] in head_inputs:
            shared[i] = _evaluate(graph, node, producer, path.parent)  # fp32 / fp16: W.T; int4: blocks as rows
            graph.node.remove(node)
    if not shared:
        return
    if plain and lookup.op_type == "GatherBlockQuantized":
        _dequantized_lookup(graph, lookup, path, shared[0], shared[2])
    else:
        for i, array in shared.items():
            lookup.input[i] = _append_initializer(graph, path, f"model.embed_tokens.input{i}", array)
    used = {name for node in graph.node for name in node.input}
    for tensor in [t for t in graph.initializer if t.name not in used]:  # the removed nodes' constants
        graph.initializer.remove(tensor)


def _dequantized_lookup(graph, lookup, path: Path, packed, scales) -> None:
    """GatherBlockQuantized(packed uint4 blocks, ids, scales) -> Gather(table, ids), table = (q - 8) * scale."""
    import numpy as np  # noqa: PLC0415
    from onnx import helper  # noqa: PLC0415

    attrs = {a.name: helper.get_attribute_value(a) for a in lookup.attribute}
    if len(lookup.input) > 3 or attrs.get("bits", 4) != 4 or attrs.get("quantize_axis", 1) not in (1, -1):
        raise BuildError(f"{lookup.name}: a quantized embedding this builder cannot dequantize ({attrs})")
    q = np.stack([packed & 0x0F, packed >> 4], axis=-1).reshape(packed.shape[0], -1).astype(np.float32)
    table = ((q - 8.0) * np.repeat(scales.astype(np.float32), attrs["block_size"], axis=1)).astype(scales.dtype)
    name = _append_initializer(graph, path, "model.embed_tokens.weight", table)
    index = list(graph.node).index(lookup)
    graph.node.remove(lookup)
    graph.node.insert(index, helper.make_node("Gather", [name, "input_ids"], list(lookup.output), name=lookup.name))


def _evaluate(graph, node, producer, base: Path):
    """A Transpose or Reshape of an initializer, computed here (so ONNX Runtime does not fold it into a copy)."""
    from onnx import helper, numpy_helper  # noqa: PLC0415

    array = _external_array(graph, node.input[0], base)
    if node.op_type == "Transpose":
        perm = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "perm"), None)
        return array.transpose(perm)
    shape = next((numpy_helper.to_array(t) for t in graph.initializer if t.name == node.input[1]), None)
    if shape is None:  # a Constant node
        shape = numpy_helper.to_array(helper.get_attribute_value(producer[node.input[1]].attribute[0]))
    return array.reshape([d if d else array.shape[i] for i, d in enumerate(shape.tolist())])


def _external_array(graph, name: str, base: Path):
    from onnx import numpy_helper  # noqa: PLC0415

    tensor = next(t for t in graph.initializer if t.name == name)
    return numpy_helper.to_array(tensor, str(base))


def _append_initializer(graph, path: Path, name: str, array) -> str:
    """Write `array` at the end of the graph's data file (aligned) and add it as an external initializer."""
    import numpy as np  # noqa: PLC0415
    from onnx import TensorProto, helper  # noqa: PLC0415

    array = np.ascontiguousarray(array)
    data = path.with_name(path.name + ".data")
    with open(data, "ab") as f:
        offset = -(-f.tell() // DATA_ALIGN) * DATA_ALIGN
        f.write(b"\0" * (offset - f.tell()))
        f.write(array.tobytes())
    tensor = TensorProto(name=name, data_type=helper.np_dtype_to_tensor_dtype(array.dtype), dims=array.shape,
                         data_location=TensorProto.EXTERNAL)
    for key, value in (("location", data.name), ("offset", str(offset)), ("length", str(array.nbytes))):
        tensor.external_data.add(key=key, value=value)
    graph.initializer.append(tensor)
    return name


def _lm_head(graph):
    producer = {out: node for node in graph.node for out in node.output}
    node = producer["logits"]
    while node.op_type not in LM_HEAD_OPS:  # a Cast (fp16 graphs) or similar sits between the head and logits
        node = producer[node.input[0]]
    return node


def export_checked(checkpoint: Path, out_dir: Path, precision: Precision = Precision.FP32) -> Exported:
    """Export, then compare the engine's last-position logits with PyTorch's (fp32) on one prompt."""
    import numpy as np  # noqa: PLC0415
    import torch  # noqa: PLC0415
    from transformers import AutoModelForCausalLM  # noqa: PLC0415

    from runtime.llm.slot_session import SlotSession  # noqa: PLC0415

    path = export_decoder(checkpoint, out_dir, precision)
    prompt = [1 + (i * 7919) % 1000 for i in range(32)]
    session = SlotSession(path, slots=1, max_len=len(prompt))
    got = session.prefill(0, prompt)
    del session
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    with torch.no_grad():
        expected = model(torch.tensor([prompt])).logits[0, -1].numpy()
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return Exported(path, weights, float(np.abs(got - expected).max()))


def onnx_file_size(out_dir: Path) -> int:
    return sum(os.path.getsize(p) for p in Path(out_dir).iterdir() if p.is_file())
