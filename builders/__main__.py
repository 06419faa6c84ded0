"""CLI: `python -m builders demo --out build/model_repository`, and one subcommand per model family."""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from builders.demo import FAMILIES, build_demo
from builders.deploy import deploy
from runtime.memory import bound_allocator
from builders.progress import BuildError, console
from builders.target import add_target_args, target_from_args
from builders.sizes import add_parser as add_sizes_parser


def _demo(args: argparse.Namespace) -> int:
    served = build_demo(args.out, args.work or args.out.parent / "work", args.only, target_from_args(args))
    console.print(f"model repository {args.out}: serves {', '.join(served) or 'nothing'}")
    return 0


def _deploy(args: argparse.Namespace) -> int:
    served = deploy(args.checkpoints, args.out, args.work or args.out.parent / "work", target_from_args(args))
    console.print(f"model repository {args.out}: serves {', '.join(served)}")
    return 0


def _compile(args: argparse.Namespace) -> int:
    from builders.compile import compile_repository  # noqa: PLC0415

    manifests = compile_repository(args.repo, args.timing_cache, args.device_id)
    console.print(f"compiled {len(manifests)} engines in {args.repo}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="builders", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="build the embedded demo repository (tiny models)")
    demo.add_argument("--out", type=Path, default=Path("build/model_repository"))
    demo.add_argument("--work", type=Path, help="scratch dir for checkpoints and ONNX (default: <out>/../work)")
    demo.add_argument("--only", action="append", choices=sorted(FAMILIES), help="build only these families")
    add_target_args(demo)
    demo.set_defaults(fn=_demo)
    dep = sub.add_parser("deploy", help="build every checkpoint folder under --checkpoints (family auto-detected)")
    dep.add_argument("--checkpoints", type=Path, required=True, help="one Hugging Face checkpoint folder per model")
    dep.add_argument("--out", type=Path, default=Path("build/model_repository"))
    dep.add_argument("--work", type=Path, help="scratch dir for ONNX exports (default: <out>/../work)")
    add_target_args(dep)
    dep.set_defaults(fn=_deploy)
    comp = sub.add_parser("compile", help="compile a --device cuda repository's graphs to TensorRT (on a GPU node)")
    comp.add_argument("repo", type=Path, help="model repository written with --device cuda")
    comp.add_argument("--timing-cache", type=Path, help="TensorRT timing cache folder, reused across builds "
                      "(default: ~/.cache/triton-openai/trt-timing)")
    comp.add_argument("--device-id", type=int, default=0, help="GPU to build on")
    comp.set_defaults(fn=_compile)
    for module in FAMILIES.values():
        importlib.import_module(module).add_parser(sub)  # each sets its own fn
    add_sizes_parser(sub)
    args = parser.parse_args(argv)
    bound_allocator()  # builds load torch lazily: this is before their big allocations (runtime/memory.py)
    try:
        return args.fn(args)
    except BuildError as exc:
        console.print(f"[red]error:[/] {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
