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
from pathlib import Path

from builders.onnx_export import Exported, check_session, export_streaming, inline_weights, max_abs_diff
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


def _sample_inputs(cfg, dtype) -> tuple:
    """A batch of 2 with 3 new tokens after 4 cached ones: every dynamic axis above 1 while tracing."""
    import torch  # noqa: PLC0415

    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    batch, new, past_len = 2, 3, 4
    gen = torch.Generator().manual_seed(0)
    past = [torch.randn(batch, cfg.num_key_value_heads, past_len, head_dim, generator=gen).to(dtype)
            for _ in range(2 * cfg.num_hidden_layers)]
    mask = torch.ones(batch, past_len + new, dtype=torch.int64)
    positions = torch.arange(past_len, past_len + new).repeat(batch, 1)
    ids = torch.randint(0, cfg.vocab_size, (batch, new), generator=gen)
    return (ids, mask, positions, *past)


def export_decoder(model, out_dir: Path, external_data: bool | None = None) -> Path:
    """Export to out_dir/model.onnx; weights stay in model.onnx.data when over 2 GB or when forced.

    The weights are streamed from the module to the data file (builders/onnx_export.py), so the export holds
    them once; small graphs then get them back inline (one file)."""
    cfg = model.config
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "model.onnx"
    inputs, outputs = io_names(cfg.num_hidden_layers)
    axes = {"input_ids": {0: "batch", 1: "new"}, "attention_mask": {0: "batch", 1: "total"},
            "position_ids": {0: "batch", 1: "new"}, "logits": {0: "batch"}}
    axes |= {n: {0: "batch", 2: "past"} for n in inputs[3:]}
    axes |= {n: {0: "batch", 2: "total"} for n in outputs[1:]}
    args = _sample_inputs(cfg, next(model.parameters()).dtype)
    weights = export_streaming(_decoder_module(model), args, path, input_names=inputs, output_names=outputs,
                               dynamic_axes=axes, opset_version=17)
    if not (external_data if external_data is not None else weights >= TWO_GB):
        inline_weights(path)
    return path


def export_checked(checkpoint: Path, out_dir: Path, dtype: str, external_data: bool | None = None) -> Exported:
    """Load, export, free the module, then compare ONNX Runtime's logits with PyTorch's on one batch."""
    import torch  # noqa: PLC0415

    from builders.progress import step  # noqa: PLC0415

    with step(f"llm: load {Path(checkpoint).name} ({dtype})"):
        model = load_checkpoint(checkpoint, dtype)
    args = _sample_inputs(model.config, next(model.parameters()).dtype)
    with torch.no_grad():
        expected = _decoder_module(model)(*args)[0].float().numpy()
    with step("llm: trace and stream weights to ONNX external data"):
        path = export_decoder(model, out_dir, external_data)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    del model
    gc.collect()  # the module's weights go before ONNX Runtime loads its own
    with step("llm: check ONNX Runtime against PyTorch"):
        session = check_session(path)
        names = [i.name for i in session.get_inputs()]
        got = session.run(["logits"], {n: a.numpy() for n, a in zip(names, args)})[0]
    return Exported(path, weights, max_abs_diff(got, expected))


def onnx_file_size(out_dir: Path) -> int:
    return sum(os.path.getsize(p) for p in Path(out_dir).iterdir() if p.is_file())
