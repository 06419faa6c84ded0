"""builders.embeddings: checkpoint reading (pooling from sentence-transformers files), clear errors, ONNX
export (fp32 and fp16, checked against PyTorch) and the three Triton model folders it writes."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from builders.embeddings import build, demo_checkpoint
from builders.embeddings.checkpoint import read_checkpoint
from builders.embeddings.repository import check_model_id
from builders.progress import BuildError
from builders.triton_config import get_parameters, load_config
from runtime.contract import TASK_PARAMETER
from runtime.embeddings.params import EncoderParams
from runtime.embeddings.pooling import PoolingMode, PoolingSpec
from runtime.embeddings.session import OrtEncoderSession


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    """A 2-layer BERT with the demo model's tokenizer and no sentence-transformers files (like a bare HF dir)."""
    import torch  # noqa: PLC0415
    from transformers import AutoTokenizer, BertConfig, BertModel  # noqa: PLC0415

    path = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(path)
    AutoTokenizer.from_pretrained(str(demo_checkpoint())).save_pretrained(path)
    return path


def test_demo_checkpoint_pooling_comes_from_sentence_transformers_files():
    ck = read_checkpoint(demo_checkpoint())
    assert (ck.model_type, ck.hidden_size, ck.max_length) == ("bert", 384, 256)
    assert ck.pooling == PoolingSpec(PoolingMode.MEAN, True) and ck.pooling_source == "sentence-transformers config"


def test_cls_pooling_without_normalize(tmp_path, tiny_bert):
    ck_dir = tmp_path / "ck"
    shutil.copytree(tiny_bert, ck_dir)
    (ck_dir / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (ck_dir / "1_Pooling").mkdir()
    (ck_dir / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True,
                                                                  "pooling_mode_mean_tokens": False}))
    assert read_checkpoint(ck_dir).pooling == PoolingSpec(PoolingMode.CLS, False)


def test_clear_errors_for_missing_or_unsupported_checkpoints(tmp_path, tiny_bert):
    with pytest.raises(BuildError, match="does not exist"):
        read_checkpoint(tmp_path / "nope")
    with pytest.raises(BuildError, match="config.json is missing"):
        read_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(BuildError, match="unsupported model type 'llama'"):
        read_checkpoint(tmp_path)
    ck_dir = tmp_path / "dense"
    shutil.copytree(tiny_bert, ck_dir)
    (ck_dir / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}]))
    with pytest.raises(BuildError, match="Dense"):
        read_checkpoint(ck_dir)
    with pytest.raises(BuildError, match="model id"):
        check_model_id("intfloat/e5-large-v2")


@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
def test_build_writes_ensemble_tokenizer_and_encoder(tmp_path, tiny_bert, dtype):
    repo = tmp_path / "repo"
    model_id = build(tiny_bert, repo, tmp_path / "work", "tiny-e5", dtype)
    ensemble = load_config(repo / model_id)
    assert ensemble.platform == "ensemble"
    assert [s.model_name for s in ensemble.ensemble_scheduling.step] == ["tiny-e5__tokenizer", "tiny-e5__encoder"]
    params = get_parameters(ensemble)
    assert params[TASK_PARAMETER] == "embeddings" and params["embedding_size"] == "32"
    assert params["max_input_tokens"] == "128" and params["vocab_size"] == "30522"
    encoder = load_config(repo / "tiny-e5__encoder")
    assert encoder.max_batch_size == 2048 and encoder.dynamic_batching.max_queue_delay_microseconds == 2000
    enc_params = EncoderParams.from_parameters(get_parameters(encoder))
    assert enc_params.pooling == PoolingSpec(PoolingMode.MEAN, True)  # no sentence-transformers files: default
    assert (repo / "tiny-e5__tokenizer" / "1" / "tokenizer" / "tokenizer.json").exists()
    engine = repo / "tiny-e5__encoder" / "1" / "model.onnx"
    ids = np.array([[101, 7592, 2088, 102, 0]])
    out = OrtEncoderSession(engine).run(ids, (ids > 0).astype(np.int64))
    assert out.shape == (1, 5, 32) and out.dtype == np.float32  # fp16 keeps fp32 inputs and outputs


def test_bf16_is_refused_before_export_for_encoders(tmp_path):
    from types import SimpleNamespace  # noqa: PLC0415

    from builders.embeddings.export import export_onnx  # noqa: PLC0415

    with pytest.raises(BuildError, match="embeddings: no bf16 export"):
        export_onnx(SimpleNamespace(path=tmp_path), tmp_path / "model.onnx", "bf16")
