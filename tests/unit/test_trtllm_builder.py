"""The TensorRT-LLM builder on a CPU machine: --dry-run prints the library's commands and writes an entry whose
config.pbtxt Triton's own protobuf parses, with the engine and parallelism as parameters; the generator picks the
TensorRT-LLM engine for it and refuses, at load, an engine that was never built or built for another node."""
from __future__ import annotations

import dataclasses
import json
import shlex

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from builders.__main__ import main
from builders.llm.llama3_tokenizer import llama3_tokenizer
from builders.llm.tiny import save_tokenizer
from builders.llm.trtllm import TrtLlmSpec, build_command, convert_command
from builders.triton_config import get_parameters
from runtime.llm import families
from runtime.llm.generator import Generator
from runtime.llm.protocol import GeneratorConfig
from runtime.llm.trtllm_manifest import ENGINE_DIR, MANIFEST_FILE, TrtLlmManifest
from runtime.target import EngineKind, EngineTarget

MODEL_ID = "llama-3-70b-instruct"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A Llama-3-70B-shaped config.json with Llama-3's tokenizer: the dry run reads no weights."""
    out = tmp_path_factory.mktemp("ckpt")
    save_tokenizer(llama3_tokenizer(), out)
    (out / "config.json").write_text(json.dumps({
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 128256, "hidden_size": 8192,
        "num_hidden_layers": 80, "num_attention_heads": 64, "num_key_value_heads": 8,
        "max_position_embeddings": 8192}))
    return out


def run_dry(checkpoint, repo, capsys, *extra):
    argv = ["llm", "--engine", "tensorrt-llm", "--checkpoint", str(checkpoint), "--model-id", MODEL_ID,
            "--out", str(repo), "--tp", "4", "--max-batch-size", "64", "--max-model-len", "16384", "--dry-run", *extra]
    assert main(argv) == 0
    return [shlex.split(line) for line in capsys.readouterr().out.strip().splitlines()]


def test_dry_run_prints_the_commands_and_writes_a_parsable_entry(checkpoint, tmp_path, capsys):
    convert, build = run_dry(checkpoint, tmp_path, capsys, "--pp", "2", "--quantization", "fp8")
    assert convert[1].endswith("examples/quantization/quantize.py")
    assert _flags(convert) >= {("--tp_size", "4"), ("--pp_size", "2"), ("--qformat", "fp8"),
                               ("--kv_cache_dtype", "fp8"), ("--dtype", "bfloat16")}
    version_dir = tmp_path / MODEL_ID / "1"
    assert build[0] == "trtllm-build" and ("--output_dir", str(version_dir / ENGINE_DIR)) in _flags(build)
    assert _flags(build) >= {("--max_batch_size", "64"), ("--max_num_tokens", "8192"), ("--max_seq_len", "8192"),
                             ("--max_input_len", "8191"), ("--use_paged_context_fmha", "enable")}
    assert "--gather_generation_logits" in build and ("--use_fp8_context_fmha", "enable") in _flags(build)

    config = text_format.Parse((tmp_path / MODEL_ID / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    params = get_parameters(config)
    assert config.name == MODEL_ID and config.backend == "python" and config.model_transaction_policy.decoupled
    assert [(g.count, g.kind) for g in config.instance_group] == [(1, model_config_pb2.ModelInstanceGroup.KIND_MODEL)]
    expected = {"engine_kind": "tensorrt-llm", "device": "cuda", "precision": "bf16", "engine": ENGINE_DIR,
                "tensor_parallel_size": "4", "pipeline_parallel_size": "2", "quantization": "fp8",
                "max_model_len": "8192", "vocab_size": "128256", "openai_task": "text-generation",
                "model_family": "llama3"}  # the checkpoint's family (model_type "llama")
    assert {k: params[k] for k in expected} == expected
    manifest = TrtLlmManifest.read(version_dir / MANIFEST_FILE)
    assert (manifest.world_size, manifest.max_seq_len, manifest.built) == (8, 8192, False)
    assert [shlex.split(c) for c in manifest.commands] == [convert, build]
    assert (version_dir / "model.py").exists() and (version_dir / "tokenizer" / "tokenizer.json").exists()


def test_weight_only_and_plain_conversions(checkpoint, tmp_path):
    int8 = convert_command(TrtLlmSpec(tp=2, quantization="int8-weight-only", dtype="fp16"), checkpoint, tmp_path)
    assert int8[1].endswith("examples/models/core/llama/convert_checkpoint.py")
    assert _flags(int8) >= {("--tp_size", "2"), ("--dtype", "float16"), ("--weight_only_precision", "int8")}
    assert "--use_weight_only" in int8
    plain = convert_command(TrtLlmSpec(tp=8), checkpoint, tmp_path)
    assert "--use_weight_only" not in plain and "--qformat" not in plain and ("--tp_size", "8") in _flags(plain)
    plain_build = build_command(TrtLlmSpec(), tmp_path, tmp_path, 4096)
    assert ("--max_seq_len", "4096") in _flags(plain_build) and "--use_fp8_context_fmha" not in plain_build


def test_the_generator_picks_tensorrt_llm_and_refuses_an_unbuilt_engine(checkpoint, tmp_path, capsys):
    run_dry(checkpoint, tmp_path, capsys)
    config = text_format.Parse((tmp_path / MODEL_ID / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    params = get_parameters(config)
    gen_config, target = GeneratorConfig.from_parameters(params), EngineTarget.from_parameters(params)
    assert (target.engine, gen_config.max_batch_size) == (EngineKind.TENSORRT_LLM, 64)
    with pytest.raises(RuntimeError, match="never built"):
        Generator(tmp_path / MODEL_ID / "1", gen_config, target=target)


def test_the_entry_names_the_family_the_checkpoint_speaks(checkpoint, tmp_path, capsys, monkeypatch):
    """The family comes from the checkpoint through the registry (as for the onnxruntime entries), not a fixed
    Llama-3: a Llama-architecture checkpoint served by another family gets that family's name."""
    variant = dataclasses.replace(families.DEFAULT_FAMILY, name="llama-variant")
    monkeypatch.setattr(families, "FAMILIES", {variant.name: variant})
    run_dry(checkpoint, tmp_path, capsys)
    config = text_format.Parse((tmp_path / MODEL_ID / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    params = get_parameters(config)
    assert params[families.FAMILY_PARAMETER] == "llama-variant"
    assert families.family_of_parameters(params) is variant  # what the generator and the adapter look up
    monkeypatch.setattr(families, "FAMILIES", {})
    argv = ["llm", "--engine", "tensorrt-llm", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "none"),
            "--dry-run"]
    assert main(argv) == 2
    assert "no model family serves model_type 'llama'" in " ".join(capsys.readouterr().err.split())  # rich wraps


def test_without_tensorrt_llm_a_real_build_fails_clearly(checkpoint, tmp_path, capsys):
    argv = ["llm", "--engine", "tensorrt-llm", "--checkpoint", str(checkpoint), "--out", str(tmp_path), "--tp", "2"]
    assert main(argv) == 2
    assert "TensorRT-LLM is not installed here" in capsys.readouterr().err
    assert main(["llm", "--checkpoint", str(checkpoint), "--out", str(tmp_path), "--tp", "2"]) == 2
    assert "--tp: only with --engine tensorrt-llm" in capsys.readouterr().err
    assert main(["llm", "--engine", "tensorrt-llm", "--checkpoint", str(checkpoint), "--out", str(tmp_path),
                 "--dtype", "fp32", "--dry-run"]) == 2


def test_manifest_mismatches_name_both_sides():
    m = TrtLlmManifest(tensor_parallel_size=2, pipeline_parallel_size=1, dtype="bf16", quantization="none",
                       max_batch_size=8, max_num_tokens=8192, max_seq_len=8192, tensorrt_llm_version="1.0.0",
                       gpu="NVIDIA H200")
    m.check("1.0.0", "NVIDIA H200", 2)
    with pytest.raises(RuntimeError, match=r"TensorRT-LLM 1\.0\.0, this node has 1\.1\.0"):
        m.check("1.1.0", "NVIDIA H200", 2)
    with pytest.raises(RuntimeError, match="built for NVIDIA H200, this node has NVIDIA H100 80GB HBM3"):
        m.check("1.0.0", "NVIDIA H100 80GB HBM3", 8)
    with pytest.raises(RuntimeError, match="needs 2 GPUs"):
        m.check("1.0.0", "NVIDIA H200", 1)


def _flags(argv: list[str]) -> set[tuple[str, str]]:
    return set(zip(argv, argv[1:]))
