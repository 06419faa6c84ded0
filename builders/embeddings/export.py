"""Encoder checkpoint -> ONNX (dynamic batch and sequence axes), fp32 or fp16, checked against PyTorch.

Export is its own step: the repository writer places whatever engine file it is given, so a TensorRT
compile of this ONNX (a later step) slots in between. The model is loaded in the export dtype and its weights
are streamed to model.onnx.data (builders/onnx_export.py); the module is freed before ONNX Runtime loads the
graph for the check, so the weights are never in memory twice. fp16 keeps fp32 outputs (a cast in the graph).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from builders.embeddings.checkpoint import EncoderCheckpoint
from builders.onnx_export import Exported, export_streaming, max_abs_diff
from builders.progress import BuildError, step

OPSET = 17
_AXES = {0: "batch", 1: "sequence"}
_SAMPLE = ["An example sentence to trace the encoder.", "Short one.", "Überprüfung mit Nicht-ASCII: 日本語 ✓"]


_DTYPES = {"fp32": "float32", "fp16": "float16"}
_ATOL = {"fp32": 1e-3, "fp16": 5e-2}


def _load(checkpoint: EncoderCheckpoint, dtype: str):
    import torch  # noqa: PLC0415  (heavy; builders only)
    from transformers import AutoModel, AutoTokenizer  # noqa: PLC0415

    try:
        model = AutoModel.from_pretrained(str(checkpoint.path), dtype=getattr(torch, _DTYPES[dtype]),
                                          attn_implementation="eager").eval()
        tokenizer = AutoTokenizer.from_pretrained(str(checkpoint.path))
    except (OSError, ValueError) as exc:
        raise BuildError(f"cannot load the checkpoint in {checkpoint.path}: {exc}") from exc
    return model, tokenizer


def _token_states_module(model):
    import torch  # noqa: PLC0415

    class TokenStates(torch.nn.Module):
        """Keyword call (transformers 5 reorders positional args) returning only the last hidden state."""

        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids, attention_mask):
            return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state.float()

    return TokenStates(model)


def export_onnx(checkpoint: EncoderCheckpoint, out: Path, dtype: str = "fp32") -> Exported:
    """Write out (model.onnx + model.onnx.data) with inputs input_ids, attention_mask [B, L] and output
    last_hidden_state (fp32) [B, L, H]; checked against the PyTorch module on a padded sample batch."""
    import torch  # noqa: PLC0415

    if dtype not in _DTYPES:  # bf16: the encoder stays fp16 under the CUDA provider, fp32 under TensorRT
        raise BuildError(f"embeddings: no {dtype} export (choose one of {', '.join(_DTYPES)})")
    with step(f"load {checkpoint.path.name} ({dtype})"):
        model, tokenizer = _load(checkpoint, dtype)
    sample = tokenizer(_SAMPLE, padding=True, return_tensors="pt")
    args = (sample["input_ids"], sample["attention_mask"])
    out.parent.mkdir(parents=True, exist_ok=True)
    module = _token_states_module(model)
    with torch.no_grad():  # reference first: tracing may leave the module changed
        expected = module(*args).numpy()
    with step(f"trace and stream weights to {out.name}.data"):
        weights = export_streaming(module, args, out, input_names=["input_ids", "attention_mask"],
                                   output_names=["last_hidden_state"], opset_version=OPSET,
                                   dynamic_axes={"input_ids": _AXES, "attention_mask": _AXES,
                                                 "last_hidden_state": _AXES})
    del model, module  # free the weights before ONNX Runtime loads its own
    with step("check ONNX Runtime against PyTorch"):
        diff = check_onnx(out, args[0].numpy(), args[1].numpy(), expected, _ATOL[dtype])
    return Exported(out, weights, diff)


def check_onnx(path: Path, input_ids: np.ndarray, mask: np.ndarray, expected: np.ndarray, atol: float) -> float:
    """The exported graph must reproduce PyTorch on the sample batch (padding included)."""
    from runtime.embeddings.session import OrtEncoderSession  # noqa: PLC0415

    got = OrtEncoderSession(path).run(input_ids.astype(np.int64), mask.astype(np.int64))
    valid = mask.astype(bool)
    err = max_abs_diff(got[valid], expected[valid])
    if err > atol:
        raise BuildError(f"ONNX export of {path.name} differs from PyTorch by {err:.2e} (> {atol})")
    return err
