"""Encoder checkpoint -> ONNX (dynamic batch and sequence axes), fp32 or fp16, checked against PyTorch.

Export is its own step: the repository writer places whatever engine file it is given, so a TensorRT
compile of this ONNX (a later step) slots in between.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from builders.embeddings.checkpoint import EncoderCheckpoint
from builders.progress import BuildError

OPSET = 17
_AXES = {0: "batch", 1: "sequence"}
_SAMPLE = ["An example sentence to trace the encoder.", "Short one.", "Überprüfung mit Nicht-ASCII: 日本語 ✓"]


def _load(checkpoint: EncoderCheckpoint):
    import torch  # noqa: PLC0415  (heavy; builders only)
    from transformers import AutoModel, AutoTokenizer  # noqa: PLC0415

    try:
        model = AutoModel.from_pretrained(str(checkpoint.path), dtype=torch.float32,
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
            return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    return TokenStates(model)


def export_onnx(checkpoint: EncoderCheckpoint, out: Path, dtype: str = "fp32") -> Path:
    """Write out (model.onnx) with inputs input_ids, attention_mask [B, L] and output last_hidden_state."""
    import torch  # noqa: PLC0415

    model, tokenizer = _load(checkpoint)
    sample = tokenizer(_SAMPLE, padding=True, return_tensors="pt")
    out.parent.mkdir(parents=True, exist_ok=True)
    fp32 = out if dtype == "fp32" else out.with_name(out.stem + ".fp32.onnx")
    with torch.no_grad():  # reference first: tracing may leave the module changed
        expected = model(input_ids=sample["input_ids"], attention_mask=sample["attention_mask"]).last_hidden_state
        torch.onnx.export(_token_states_module(model), (sample["input_ids"], sample["attention_mask"]), str(fp32),
                          input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"],
                          dynamic_axes={"input_ids": _AXES, "attention_mask": _AXES, "last_hidden_state": _AXES},
                          opset_version=OPSET, dynamo=False)
    check_onnx(fp32, sample["input_ids"].numpy(), sample["attention_mask"].numpy(), expected.numpy(), 1e-3)
    if dtype == "fp16":
        to_fp16(fp32, out)
        check_onnx(out, sample["input_ids"].numpy(), sample["attention_mask"].numpy(), expected.numpy(), 5e-2)
    return out


def to_fp16(src: Path, dst: Path) -> None:
    """fp16 weights and math, fp32 inputs/outputs kept (keep_io_types) so callers do not change."""
    import onnx  # noqa: PLC0415
    from onnxruntime.transformers.float16 import convert_float_to_float16  # noqa: PLC0415

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))


def check_onnx(path: Path, input_ids: np.ndarray, mask: np.ndarray, expected: np.ndarray, atol: float) -> None:
    """The exported graph must reproduce PyTorch on the sample batch (padding included)."""
    from runtime.embeddings.session import OrtEncoderSession  # noqa: PLC0415

    got = OrtEncoderSession(path).run(input_ids.astype(np.int64), mask.astype(np.int64))
    valid = mask.astype(bool)
    err = float(np.abs(got[valid] - expected[valid]).max())
    if err > atol:
        raise BuildError(f"ONNX export of {path.name} differs from PyTorch by {err:.2e} (> {atol})")
