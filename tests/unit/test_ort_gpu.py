"""The onnxruntime-gpu session paths, run in their own venv (make ort-gpu-venv): onnxruntime and
onnxruntime-gpu cannot be installed side by side. `make test` / `make unit` create that venv first. The file is
named so that the main suite's collection (onnxruntime CPU) does not pick it up."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / os.environ.get("ORT_GPU_VENV", ".venv-ort-gpu") / "bin" / "python"


@pytest.fixture(scope="module")
def llm_graphs(tmp_path_factory) -> Path:
    """Tiny LLM graphs as the builders write them: fp32 for the CPU with this onnxruntime's logits for one prompt
    and one decode step (the GPU image's onnxruntime must load it and agree), and the `--device cuda` graphs
    (checked against its operator schemas: they need a GPU to run). tests/ort_gpu/sessions_check.py checks them.
    A CPU int4 graph keeps the builder's packed 4-bit lookup, which only the CPU stack's newer onnxruntime reads."""
    import numpy as np

    from builders.llm.export import export_decoder
    from builders.llm.tiny import TinySpec, make_tiny_llama
    from runtime.llm.slot_session import SlotSession
    from runtime.target import Device, Precision

    root = tmp_path_factory.mktemp("llm-graphs")
    checkpoint = make_tiny_llama(root / "checkpoint", TinySpec(seed=3, max_model_len=128, tie_word_embeddings=True))
    graph = export_decoder(checkpoint, root / "fp32", Precision.FP32)
    session = SlotSession(graph, slots=2, max_len=64)
    first = session.prefill(1, [128000, 5, 6, 7])
    np.save(root / "fp32" / "expected.npy", np.stack([first, session.decode([1], [9])[0]]))
    for precision in (Precision.FP16, Precision.INT4):  # what --device cuda builds: checked against 1.20's schemas
        export_decoder(checkpoint, root / f"cuda-{precision.value}", precision, Device.CUDA)
    return root


def test_session_paths_under_onnxruntime_gpu(llm_graphs):
    if not PYTHON.exists():
        pytest.fail(f"{PYTHON} missing: run `make ort-gpu-venv` (make test does)", pytrace=False)
    check = "tests/ort_gpu/sessions_check.py"
    run = subprocess.run([str(PYTHON), "-m", "pytest", "-q", "-p", "no:cacheprovider", check], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, env={**os.environ, "LLM_GRAPHS": str(llm_graphs)})
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "failed" not in run.stdout
