"""Place exported engines and the pipeline's small assets into a Triton model folder (no export here).

<repo>/<model id>/config.pbtxt        from model_repository/sdxl_pipeline, with the model parameters
<repo>/<model id>/1/model.py          the Python-backend shell
<repo>/<model id>/1/engines/*.onnx    (+ .onnx.data) text_encoder, text_encoder_2, unet, vae_decoder
<repo>/<model id>/1/{tokenizer,tokenizer_2,scheduler,vae}/  tokenizers, scheduler config, VAE config
"""
from __future__ import annotations

import shutil
from pathlib import Path

from builders.profiles import sdxl_ranges, write_plan
from builders.sdxl.checkpoint import SdxlCheckpoint
from builders.target import CPU_TARGET, BuildTarget
from builders.triton_config import load_config, set_parameters, write_model
from runtime.contract import OWNED_BY_PARAMETER, TASK_PARAMETER, Task
from runtime.sdxl.config import ImageModelConfig

TEMPLATE = "sdxl_pipeline"


def place_model(repo: Path, model_id: str, ckpt: SdxlCheckpoint, engines: dict[str, Path],
                config: ImageModelConfig, owned_by: str = "stabilityai", instances: int = 1,
                target: BuildTarget = CPU_TARGET) -> Path:
    model_config = load_config(TEMPLATE)
    model_config.name = model_id
    model_config.instance_group[0].count = instances
    set_parameters(model_config, **{TASK_PARAMETER: Task.IMAGE_GENERATION.value, OWNED_BY_PARAMETER: owned_by},
                   **config.to_parameters())
    target.apply(model_config)  # on cuda: KIND_GPU, --instances-per-gpu replaces --instances
    version_dir = write_model(repo, model_config, TEMPLATE)
    _copy_engines(engines, version_dir / "engines")
    if target.engine.compiled:
        _write_plans(version_dir / "engines", engines, config, ckpt, target)
    for name in ("tokenizer", "tokenizer_2", "scheduler"):
        shutil.copytree(ckpt.component(name), version_dir / name, dirs_exist_ok=True)
    (version_dir / "vae").mkdir(exist_ok=True)
    shutil.copy2(ckpt.component("vae") / "config.json", version_dir / "vae" / "config.json")
    return version_dir


def _write_plans(engine_dir: Path, engines: dict[str, Path], config: ImageModelConfig, ckpt: SdxlCheckpoint,
                 target: BuildTarget) -> None:
    """Compile plans: profiles from the served sizes and batch limit, precision per engine (the VAE: fp32)."""
    for name, path in engines.items():
        ranges = sdxl_ranges(name, list(config.sizes), config.default_size, ckpt.vae_scale_factor,
                             config.max_batch_images)
        write_plan(engine_dir / path.name, target.component(name).precision.value, [ranges])


def _copy_engines(engines: dict[str, Path], dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for path in engines.values():
        for file in (path, path.with_name(path.name + ".data")):
            if file.exists():
                shutil.copy2(file, dest / file.name)
