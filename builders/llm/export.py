"""Llama checkpoint -> ONNX decoder with KV cache (legacy torch.onnx.export, dynamo=False).

Graph I/O (the ORT session in runtime/llm/ort_session.py relies on these names):
  input_ids [batch, new] int64, attention_mask [batch, past+new] int64, position_ids [batch, new] int64,
  past_key_values.{i}.key / .value [batch, kv_heads, past, head_dim]
  -> logits [batch, vocab] (last position only: the generator never needs the others),
     present.{i}.key / .value [batch, kv_heads, past+new, head_dim]
"""
from __future__ import annotations

import gc
import inspect
import os
import warnings
from pathlib import Path

import onnx

from builders.progress import BuildError

SUPPORTED_ARCHITECTURES = {"LlamaForCausalLM"}
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
TWO_GB = 2**31
EXTERNAL_DATA_FILE = "model.onnx.data"


def check_architecture(config) -> None:
    archs = set(getattr(config, "architectures", None) or [])
    if getattr(config, "model_type", None) != "llama" or (archs and not archs & SUPPORTED_ARCHITECTURES):
        raise BuildError(f"unsupported architecture {sorted(archs) or config.model_type!r}: the llm builder "
                         f"exports {', '.join(sorted(SUPPORTED_ARCHITECTURES))} (Llama-3 family) checkpoints")


def _decoder_module(model):
    import torch  # noqa: PLC0415
    from transformers import DynamicCache  # noqa: PLC0415

    class DecoderWithCache(torch.nn.Module):
        """Flat tensors in and out around the HF model so that the ONNX graph has one input per cache tensor."""

        def __init__(self, lm):
            super().__init__()
            self.lm = lm
            self.layers = lm.config.num_hidden_layers
            # transformers >= 5.2x calls the cache argument `cache`; older versions `past_key_values`
            self.cache_arg = "cache" if "cache" in inspect.signature(lm.forward).parameters else "past_key_values"

        def forward(self, input_ids, attention_mask, position_ids, *past):
            cache = DynamicCache(config=self.lm.config)
            for i in range(self.layers):
                cache.update(past[2 * i], past[2 * i + 1], i)
            out = self.lm(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                          use_cache=True, logits_to_keep=1, **{self.cache_arg: cache})
            cache = out.cache if hasattr(out, "cache") else out.past_key_values
            presents = []
            for layer in cache.layers:
                presents += [layer.keys, layer.values]
            return (out.logits[:, -1, :], *presents)  # logits: [B, V]

    return DecoderWithCache(model).eval()


def io_names(num_layers: int) -> tuple[list[str], list[str]]:
    past = [f"past_key_values.{i}.{kv}" for i in range(num_layers) for kv in ("key", "value")]
    present = [f"present.{i}.{kv}" for i in range(num_layers) for kv in ("key", "value")]
    return ["input_ids", "attention_mask", "position_ids", *past], ["logits", *present]


def load_checkpoint(checkpoint: Path, dtype: str):
    import torch  # noqa: PLC0415
    from transformers import AutoConfig, AutoModelForCausalLM  # noqa: PLC0415

    if not (Path(checkpoint) / "config.json").exists():
        raise BuildError(f"{checkpoint}: not a Hugging Face checkpoint directory (no config.json)")
    config = AutoConfig.from_pretrained(checkpoint)
    check_architecture(config)
    # One copy of the weights, already in the export dtype (no fp32 detour for an fp16 export).
    return AutoModelForCausalLM.from_pretrained(checkpoint, dtype=getattr(torch, DTYPES[dtype]),
                                                attn_implementation="eager").eval()


def export_decoder(model, out_dir: Path, external_data: bool | None = None) -> Path:
    """Export to out_dir/model.onnx; weights go to one external file when over 2 GB or when forced."""
    import torch  # noqa: PLC0415

    cfg = model.config
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "model.onnx"
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    dtype = next(model.parameters()).dtype
    batch, new, past_len = 2, 3, 4
    past = [torch.zeros(batch, cfg.num_key_value_heads, past_len, head_dim, dtype=dtype)
            for _ in range(2 * cfg.num_hidden_layers)]
    mask = torch.ones(batch, past_len + new, dtype=torch.int64)
    positions = torch.arange(past_len, past_len + new).repeat(batch, 1)
    ids = torch.ones(batch, new, dtype=torch.int64)
    inputs, outputs = io_names(cfg.num_hidden_layers)
    axes = {"input_ids": {0: "batch", 1: "new"}, "attention_mask": {0: "batch", 1: "total"},
            "position_ids": {0: "batch", 1: "new"}, "logits": {0: "batch"}}
    axes |= {n: {0: "batch", 2: "past"} for n in inputs[3:]}
    axes |= {n: {0: "batch", 2: "total"} for n in outputs[1:]}
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    large = external_data if external_data is not None else weights >= TWO_GB
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter about shapes the graph keeps dynamic (tested)
        torch.onnx.export(_decoder_module(model), (ids, mask, positions, *past), str(path), dynamo=False,
                          input_names=inputs, output_names=outputs, dynamic_axes=axes, opset_version=17,
                          # folding would materialize transposed copies of every weight (a second copy of
                          # the model in memory); ONNX Runtime folds those transposes itself at load time
                          do_constant_folding=not large)
    if large:
        consolidate_external_data(path)
    return path


def consolidate_external_data(path: Path) -> None:
    """Move every initializer into one external data file, one tensor at a time.

    Handles both shapes torch leaves behind: weights inline in the proto (small models) and one file per tensor
    (torch's own >2 GB path). The proto is loaded without external data, so memory holds at most one tensor
    on top of the graph structure.
    """
    model = onnx.load(str(path), load_external_data=False)
    data_path = path.parent / EXTERNAL_DATA_FILE
    leftovers: list[Path] = []
    with data_path.open("wb") as data:
        for tensor in model.graph.initializer:
            raw = _take_raw_data(tensor, path.parent, leftovers)
            if raw is None:
                continue
            offset = data.tell()
            data.write(raw)
            data.write(b"\0" * (-len(raw) % 64))  # aligned offsets let ORT mmap the tensors
            del tensor.external_data[:]
            tensor.data_location = onnx.TensorProto.EXTERNAL
            for key, value in (("location", EXTERNAL_DATA_FILE), ("offset", str(offset)), ("length", str(len(raw)))):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, value
            del raw
            gc.collect(0)
    onnx.save(model, str(path))
    for leftover in leftovers:
        leftover.unlink(missing_ok=True)


def _take_raw_data(tensor, base: Path, leftovers: list[Path]) -> bytes | None:
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        info = {e.key: e.value for e in tensor.external_data}
        if info.get("location") == EXTERNAL_DATA_FILE:
            raise BuildError("external data already consolidated")
        src = base / info["location"]
        with src.open("rb") as f:
            f.seek(int(info.get("offset", 0)))
            raw = f.read(int(info["length"])) if "length" in info else f.read()
        leftovers.append(src)
        return raw
    if tensor.HasField("raw_data") and tensor.raw_data:
        raw = tensor.raw_data
        tensor.ClearField("raw_data")
        return raw
    if tensor.dims and _numel(tensor) >= 16:  # typed fields (rare for weights): move them too
        from onnx import numpy_helper  # noqa: PLC0415

        raw = numpy_helper.to_array(tensor).tobytes()
        for field in ("float_data", "int32_data", "int64_data", "double_data", "uint64_data"):
            tensor.ClearField(field)
        return raw
    return None


def _numel(tensor) -> int:
    n = 1
    for d in tensor.dims:
        n *= d
    return n


def onnx_file_size(out_dir: Path) -> int:
    return sum(os.path.getsize(p) for p in Path(out_dir).iterdir() if p.is_file())
