"""CLI: `python -m builders demo --out build/model_repository`, and one subcommand per model family."""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from builders.demo import FAMILIES, build_demo
from builders.deploy import deploy
from builders.progress import BuildError, console
from builders.sizes import add_parser as add_sizes_parser


def _demo(args: argparse.Namespace) -> int:
    served = build_demo(args.out, args.work or args.out.parent / "work", args.only)
    console.print(f"model repository {args.out}: serves {', '.join(served) or 'nothing'}")
    return 0


def _deploy(args: argparse.Namespace) -> int:
    served = deploy(args.checkpoints, args.out, args.work or args.out.parent / "work", args.dtype)
    console.print(f"model repository {args.out}: serves {', '.join(served)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="builders", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="build the embedded demo repository (tiny models)")
    demo.add_argument("--out", type=Path, default=Path("build/model_repository"))
    demo.add_argument("--work", type=Path, help="scratch dir for checkpoints and ONNX (default: <out>/../work)")
    demo.add_argument("--only", action="append", choices=sorted(FAMILIES), help="build only these families")
    demo.set_defaults(fn=_demo)
    dep = sub.add_parser("deploy", help="build every checkpoint folder under --checkpoints (family auto-detected)")
    dep.add_argument("--checkpoints", type=Path, required=True, help="one Hugging Face checkpoint folder per model")
    dep.add_argument("--out", type=Path, default=Path("build/model_repository"))
    dep.add_argument("--work", type=Path, help="scratch dir for ONNX exports (default: <out>/../work)")
    dep.add_argument("--dtype", choices=["fp32", "fp16"], default="fp32", help="LLM and encoder weights")
    dep.set_defaults(fn=_deploy)
    for module in FAMILIES.values():
        importlib.import_module(module).add_parser(sub)  # each sets its own fn
    add_sizes_parser(sub)
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except BuildError as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
