"""Arguments every family's build subcommand shares, with one meaning each."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_build_args(parser: argparse.ArgumentParser, checkpoint_help: str) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help=checkpoint_help)
    parser.add_argument("--out", type=Path, default=Path("build/model_repository"), help="model repository")
    parser.add_argument("--model-id", help="public model id = Triton model name (default: the checkpoint folder's name)")
    parser.add_argument("--work", type=Path, help="scratch root for exports (default: <out>/../work)")


def model_id(args: argparse.Namespace) -> str:
    return args.model_id or Path(args.checkpoint).resolve().name


def work_root(args: argparse.Namespace) -> Path:
    return args.work or args.out.parent / "work"
