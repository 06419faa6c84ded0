"""Llama checkpoint -> TensorRT-LLM engine (tensor / pipeline parallel) -> generator entry on the same contract.

  python -m builders llm --engine tensorrt-llm --checkpoint DIR --model-id ID --tp N [--pp M] [--dtype bf16|fp16]
      [--quantization none|fp8|int8-weight-only] [--max-batch-size B] [--max-num-tokens T] [--max-model-len L]
      [--dry-run]

The build is TensorRT-LLM's own two-step CLI (target 1.0.0): its checkpoint converter
(examples/models/core/llama/convert_checkpoint.py, or examples/quantization/quantize.py for FP8 through ModelOpt
calibration) shards the weights for tp x pp, then `trtllm-build` compiles one engine per rank. Chosen over the
LLM API's build-and-save because every step is a command we can print (`--dry-run`) and rerun by hand, and
trtllm-build compiles all ranks one after the other on a single GPU of the serving type: a TP=4 engine does not
need four GPUs in the engine-build job, while `LLM(...).save()` starts all tp x pp ranks to build.

The entry: config.pbtxt from the llm_generator template with engine_kind "tensorrt-llm" and the parallelism as
parameters, the engine folder and the tokenizer in 1/, and trtllm_manifest.json (tp/pp, GPU, TensorRT-LLM version,
limits, the exact commands). `--dry-run` writes all of it but the engine, needs no TensorRT-LLM, and prints the
commands.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from builders.cli import model_id, work_root
from builders.llm.repository import TEMPLATE, TOKENIZER_FILES, chat_family
from builders.progress import BuildError, console, step
from builders.triton_config import load_config, set_parameters, write_model
from runtime.contract import TASK_PARAMETER, Task
from runtime.llm.families import FAMILY_PARAMETER
from runtime.llm.families.base import ModelFamily
from runtime.llm.protocol import GeneratorConfig
from runtime.llm.trtllm_manifest import ENGINE_DIR, MANIFEST_FILE, TrtLlmManifest
from runtime.target import Device, EngineKind, EngineTarget, Precision
from tritonclient.grpc import model_config_pb2

ENGINE_TYPE = EngineKind.TENSORRT_LLM.value
DTYPES = {"bf16": "bfloat16", "fp16": "float16"}
QUANTIZATIONS = ("none", "fp8", "int8-weight-only")
# The library's example scripts are not in its wheel; the Dockerfile's trtllm stage puts the 1.0.0 ones here.
DEFAULT_EXAMPLES = Path(os.environ.get("TRTLLM_EXAMPLES", "/opt/tensorrt_llm/examples"))


@dataclass(frozen=True)
class TrtLlmSpec:
    tp: int = 1
    pp: int = 1
    dtype: str = "bf16"
    quantization: str = "none"
    max_batch_size: int = 64
    max_num_tokens: int = 8192
    max_model_len: int | None = None  # default: the checkpoint's max_position_embeddings
    examples: Path = DEFAULT_EXAMPLES
    calib_dataset: str | None = None  # FP8 calibration set (a local folder on an offline build node)

    def check(self) -> None:
        if self.dtype not in DTYPES:
            raise BuildError(f"--dtype {self.dtype}: TensorRT-LLM engines are built in {' or '.join(DTYPES)}")
        if self.quantization not in QUANTIZATIONS:
            raise BuildError(f"--quantization {self.quantization}: one of {', '.join(QUANTIZATIONS)}")
        if self.tp < 1 or self.pp < 1:
            raise BuildError("--tp and --pp must be at least 1")


def convert_command(spec: TrtLlmSpec, checkpoint: Path, out: Path) -> list[str]:
    """The library's checkpoint conversion: weights sharded for tp x pp (and quantized) into `out`."""
    common = ["--model_dir", str(checkpoint), "--output_dir", str(out), "--dtype", DTYPES[spec.dtype],
              "--tp_size", str(spec.tp), "--pp_size", str(spec.pp)]
    if spec.quantization == "fp8":  # ModelOpt calibration; FP8 KV cache halves the cache too
        calib = ["--calib_dataset", spec.calib_dataset] if spec.calib_dataset else []
        return ["python3", str(spec.examples / "quantization" / "quantize.py"), *common,
                "--qformat", "fp8", "--kv_cache_dtype", "fp8", *calib]
    script = ["python3", str(spec.examples / "models" / "core" / "llama" / "convert_checkpoint.py"), *common]
    if spec.quantization == "int8-weight-only":
        script += ["--use_weight_only", "--weight_only_precision", "int8"]
    return script


def build_command(spec: TrtLlmSpec, converted: Path, engine_dir: Path, max_seq_len: int) -> list[str]:
    """trtllm-build: one engine per rank (built in turn on this GPU), limits fixed at build time."""
    command = ["trtllm-build", "--checkpoint_dir", str(converted), "--output_dir", str(engine_dir),
               "--gemm_plugin", "auto", "--max_batch_size", str(spec.max_batch_size),
               "--max_num_tokens", str(spec.max_num_tokens), "--max_seq_len", str(max_seq_len),
               "--max_input_len", str(max_seq_len - 1),
               "--use_paged_context_fmha", "enable",  # chunked prefill: prompts longer than max_num_tokens
               "--gather_generation_logits"]  # logprobs on the TensorRT flow are computed from these
    if spec.quantization == "fp8":  # paged context FMHA alone would keep FP8 attention off (Hopper)
        command += ["--use_fp8_context_fmha", "enable"]
    return command


@dataclass(frozen=True)
class CheckpointFacts:
    """What the entry needs from the checkpoint's config.json, read without loading any weights."""
    context: int
    vocab_size: int
    family: ModelFamily  # the chat format: template, stop tokens, tool-call parsers


def read_checkpoint(checkpoint: Path, max_model_len: int | None) -> CheckpointFacts:
    path = Path(checkpoint) / "config.json"
    if not path.exists():
        raise BuildError(f"{checkpoint}: no config.json (a Hugging Face Llama checkpoint is required)")
    cfg = json.loads(path.read_text())
    # The converter (convert_checkpoint.py for Llama) fixes the architecture; the chat format is the family's.
    if cfg.get("model_type") != "llama":
        raise BuildError(f"{checkpoint}: model_type {cfg.get('model_type')!r}; this builder takes Llama checkpoints")
    if not (Path(checkpoint) / "tokenizer.json").exists():
        raise BuildError(f"{checkpoint}: no tokenizer.json (a fast tokenizer is required)")
    limit = cfg["max_position_embeddings"]
    return CheckpointFacts(min(max_model_len or limit, limit), cfg["vocab_size"], chat_family(checkpoint, cfg))


def write_entry(checkpoint: Path, repo: Path, name: str, spec: TrtLlmSpec, *, work: Path,
                dry_run: bool = False) -> Path:
    """Write the repository entry; without dry_run also run the conversion and the engine build."""
    spec.check()
    checkpoint = Path(checkpoint)
    facts = read_checkpoint(checkpoint, spec.max_model_len)
    config = entry_config(name, spec, facts)
    version_dir = write_model(repo, config, TEMPLATE)
    converted = Path(work) / "trtllm_checkpoint"
    commands = [convert_command(spec, checkpoint, converted),
                build_command(spec, converted, version_dir / ENGINE_DIR, facts.context)]
    _copy_tokenizer(checkpoint, version_dir / "tokenizer")
    manifest = TrtLlmManifest(tensor_parallel_size=spec.tp, pipeline_parallel_size=spec.pp, dtype=spec.dtype,
                              quantization=spec.quantization, max_batch_size=spec.max_batch_size,
                              max_num_tokens=spec.max_num_tokens, max_seq_len=facts.context,
                              commands=tuple(shlex.join(c) for c in commands))
    if dry_run:
        print("\n".join(manifest.commands))
    else:
        manifest = _run_build(commands, converted, manifest)
    manifest.write(version_dir / MANIFEST_FILE)
    return version_dir


def entry_config(name: str, spec: TrtLlmSpec, facts: CheckpointFacts) -> model_config_pb2.ModelConfig:
    config = load_config(TEMPLATE)
    config.name = name
    generator = GeneratorConfig(max_model_len=facts.context, vocab_size=facts.vocab_size,
                                max_batch_size=spec.max_batch_size, engine=ENGINE_DIR)
    set_parameters(config, **{TASK_PARAMETER: Task.TEXT_GENERATION.value, FAMILY_PARAMETER: facts.family.name},
                   **generator.to_parameters(),
                   tensor_parallel_size=spec.tp, pipeline_parallel_size=spec.pp, quantization=spec.quantization,
                   **EngineTarget(Device.CUDA, EngineKind.TENSORRT_LLM, Precision(spec.dtype)).to_parameters())
    # One instance; the library places its tp x pp ranks on the node's GPUs itself.
    del config.instance_group[:]
    config.instance_group.add(count=1, kind=model_config_pb2.ModelInstanceGroup.KIND_MODEL)
    return config


def _copy_tokenizer(checkpoint: Path, tok_dir: Path) -> None:
    tok_dir.mkdir(parents=True, exist_ok=True)
    for name in (n for n in TOKENIZER_FILES if (checkpoint / n).exists()):
        shutil.copy2(checkpoint / name, tok_dir / name)


def _run_build(commands: list[list[str]], converted: Path, manifest: TrtLlmManifest) -> TrtLlmManifest:
    if shutil.which("trtllm-build") is None or not Path(commands[0][1]).exists():
        raise BuildError(f"TensorRT-LLM is not installed here (trtllm-build and {commands[0][1]} are needed): build on "
                         "a GPU node in the Dockerfile's trtllm stage, or use --dry-run for the commands")
    shutil.rmtree(converted, ignore_errors=True)
    for command in commands:
        with step(f"llm (tensorrt-llm): {Path(command[1]).name if command[0] == 'python3' else command[0]}"):
            if subprocess.run(command, check=False).returncode != 0:
                raise BuildError(f"failed: {shlex.join(command)}")
    import torch  # noqa: PLC0415  (the engine's GPU, named as the generator checks it at load)

    return TrtLlmManifest(**{**manifest.__dict__, "tensorrt_llm_version": importlib.metadata.version("tensorrt_llm"),
                             "gpu": torch.cuda.get_device_name(0)})


def add_args(parser: argparse.ArgumentParser) -> None:
    """The llm subcommand's TensorRT-LLM options (ignored by the onnxruntime engine unless given)."""
    g = parser.add_argument_group("tensorrt-llm engine")
    g.add_argument("--tp", type=int, help="tensor parallel ranks (GPUs per pipeline stage)")
    g.add_argument("--pp", type=int, help="pipeline parallel stages")
    g.add_argument("--quantization", choices=QUANTIZATIONS, help="weights (and KV cache for fp8); default none")
    g.add_argument("--max-num-tokens", type=int, help="tokens per engine step (default 8192)")
    g.add_argument("--dry-run", action="store_true", help="print the build commands and write the entry, no engine")
    g.add_argument("--trtllm-examples", type=Path, help=f"TensorRT-LLM examples folder (default {DEFAULT_EXAMPLES})")
    g.add_argument("--calib-dataset", help="fp8 calibration dataset name or local folder")


TRTLLM_ONLY = ("tp", "pp", "quantization", "max_num_tokens", "dry_run", "trtllm_examples", "calib_dataset")


def build_from_args(args: argparse.Namespace) -> int:
    name = model_id(args)
    spec = TrtLlmSpec(tp=args.tp or 1, pp=args.pp or 1, dtype=args.precision or "bf16",
                      quantization=args.quantization or "none", max_batch_size=args.max_batch_size,
                      max_num_tokens=args.max_num_tokens or 8192, max_model_len=args.max_model_len,
                      examples=args.trtllm_examples or DEFAULT_EXAMPLES, calib_dataset=args.calib_dataset)
    version_dir = write_entry(args.checkpoint, args.out, name, spec, work=work_root(args) / name, dry_run=args.dry_run)
    console.print(f"{'wrote (dry run, no engine)' if args.dry_run else 'built'} {version_dir.parent}")
    return 0
