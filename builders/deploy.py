"""Build a whole repository from a folder of checkpoints (the container's entry point), one family each.

Each sub-folder is one Hugging Face checkpoint; its name becomes the public model id. The family comes from
the checkpoint's own files: a diffusers SDXL pipeline (model_index.json), a causal LM of a model family the runtime
serves (runtime/llm/families), or an encoder.
"""
from __future__ import annotations

import json
from pathlib import Path

from builders.progress import BuildError, step
from builders.target import CPU_TARGET, BuildTarget
from runtime.llm.families import family_for_checkpoint


def detect_family(checkpoint: Path) -> str:
    if (checkpoint / "model_index.json").exists():
        return "sdxl"
    config_path = checkpoint / "config.json"
    if not config_path.exists():
        raise BuildError(f"{checkpoint}: neither model_index.json (diffusers) nor config.json (transformers)")
    config = json.loads(config_path.read_text())
    if family_for_checkpoint(config) is not None:
        return "llm"
    return "embeddings"  # the embeddings builder names the encoder types it supports when this is wrong


def build_checkpoint(checkpoint: Path, repo: Path, work: Path, target: BuildTarget = CPU_TARGET) -> str:
    family, model_id = detect_family(checkpoint), checkpoint.name
    target = target.for_family(family)
    with step(f"deploy {model_id} ({family})"):
        if family == "llm":
            from builders.llm.repository import build_model as build_llm  # noqa: PLC0415

            build_llm(checkpoint, repo, model_id, work=work / model_id, target=target)
        elif family == "sdxl":
            from builders.sdxl import build_model as build_sdxl  # noqa: PLC0415

            build_sdxl(checkpoint, repo, model_id, work / model_id, target=target)  # graphs fp32; VAE stays fp32
        else:
            from builders.embeddings import build as build_embeddings  # noqa: PLC0415
            from builders.embeddings.repository import ServingOptions  # noqa: PLC0415

            build_embeddings(checkpoint, repo, work, model_id, target.export_dtype(), ServingOptions.for_target(target))
    return model_id


def deploy(checkpoints: Path, repo: Path, work: Path, target: BuildTarget = CPU_TARGET) -> list[str]:
    folders = sorted(p for p in Path(checkpoints).iterdir() if p.is_dir()) if Path(checkpoints).is_dir() else []
    if not folders:
        raise BuildError(f"no checkpoint folders under {checkpoints} (mount one folder per model there)")
    repo.mkdir(parents=True, exist_ok=True)
    return [build_checkpoint(folder, repo, work, target) for folder in folders]
