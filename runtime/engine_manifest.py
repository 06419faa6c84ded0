"""The manifest beside each compiled engine: what it was built for, checked against this machine at load.

A TensorRT engine only runs on the GPU architecture and the TensorRT version that built it (and is read by
the ONNX Runtime version that wrote its EPContext model). `builders compile` writes <graph>.manifest.json;
the Triton model refuses to load an engine whose manifest differs from the serving environment, naming both.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

MANIFEST_SUFFIX = ".manifest.json"
CONTEXT_SUFFIX = "_ctx.onnx"  # ONNX Runtime's name for the EPContext model of <stem>.onnx


class EngineMismatch(RuntimeError):
    """The engine was compiled for another GPU or library version than the one serving it."""


class EngineNotCompiled(RuntimeError):
    """A graph that must be compiled for the serving GPU has no compiled engine yet."""


@dataclass(frozen=True)
class BuildEnvironment:
    gpu_name: str
    compute_capability: str
    tensorrt_version: str
    onnxruntime_version: str

    @classmethod
    def current(cls, device_id: int = 0) -> "BuildEnvironment":
        import onnxruntime  # noqa: PLC0415

        from runtime.gpu_probe import gpu_info, tensorrt_version  # noqa: PLC0415

        info = gpu_info(device_id)
        return cls(info.name, info.compute_capability, tensorrt_version(), onnxruntime.__version__)


@dataclass(frozen=True)
class EngineManifest:
    environment: BuildEnvironment
    source: str  # the ONNX graph it was compiled from (file name)
    context_model: str  # the EPContext model ONNX Runtime loads (file name, same folder)
    engine_files: tuple[str, ...]  # TensorRT engines the context model points to
    precision: str
    profile: dict  # {"min": {input: shape}, "opt": ..., "max": ...}

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "EngineManifest":
        data = json.loads(text)
        env = BuildEnvironment(**{f.name: data["environment"][f.name] for f in fields(BuildEnvironment)})
        return cls(env, data["source"], data["context_model"], tuple(data["engine_files"]), data["precision"],
                   data["profile"])


def manifest_path(graph: Path) -> Path:
    return graph.with_name(graph.stem + MANIFEST_SUFFIX)


def context_path(graph: Path) -> Path:
    return graph.with_name(graph.stem + CONTEXT_SUFFIX)


def check_environment(built: BuildEnvironment, serving: BuildEnvironment, what: str) -> None:
    """Raise EngineMismatch naming every field where the build and the serving environment differ."""
    diffs = [f"{f.name}: built with {getattr(built, f.name)!r}, serving has {getattr(serving, f.name)!r}"
             for f in fields(BuildEnvironment) if getattr(built, f.name) != getattr(serving, f.name)]
    if diffs:  # TensorRT tunes tactics per GPU model, not only per architecture: any difference rebuilds
        raise EngineMismatch(f"{what} was compiled for another GPU or library version ({'; '.join(diffs)}): "
                             "rebuild it on this node type with `python -m builders compile`")


def load_compiled(graph: Path, serving: BuildEnvironment) -> Path:
    """The EPContext model to load for `graph`, after checking its manifest against the serving environment."""
    path = manifest_path(graph)
    if not path.exists():
        raise EngineNotCompiled(f"{graph} has no compiled TensorRT engine ({path.name} missing): run "
                                "`python -m builders compile <repository>` on a GPU node of the serving type")
    manifest = EngineManifest.from_json(path.read_text())
    check_environment(manifest.environment, serving, str(graph))
    return graph.with_name(manifest.context_model)
