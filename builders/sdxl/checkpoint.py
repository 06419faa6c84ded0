"""Inspect a diffusers SDXL checkpoint directory before any heavy work; fail with a clear BuildError."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import diffusers

from builders.progress import BuildError

PIPELINE_CLASSES = ("StableDiffusionXLPipeline",)
COMPONENTS = ("tokenizer", "tokenizer_2", "text_encoder", "text_encoder_2", "unet", "vae", "scheduler")
WEIGHT_FILES = ("model.safetensors", "diffusion_pytorch_model.safetensors", "pytorch_model.bin",
                "diffusion_pytorch_model.bin", "model.safetensors.index.json",
                "diffusion_pytorch_model.safetensors.index.json")


@dataclass(frozen=True)
class SdxlCheckpoint:
    path: Path
    force_zeros_for_empty_prompt: bool
    scheduler_class: str
    vae_scale_factor: int  # image side / latent side
    sample_size: int  # the UNet's native latent side (128 for SDXL base: 1024 px)
    size_multiple: int  # image sides must divide by VAE scale x UNet downsampling (32 for SDXL base)

    def component(self, name: str) -> Path:
        return self.path / name

    def variant(self, name: str) -> str | None:
        """None when full-precision weights exist, "fp16" when only the fp16 variant was downloaded."""
        folder = self.component(name)
        if any((folder / f).exists() for f in WEIGHT_FILES):
            return None
        return "fp16" if any(folder.glob("*.fp16.*")) else None


def inspect_checkpoint(path: Path) -> SdxlCheckpoint:
    path = Path(path)
    if not path.is_dir():
        raise BuildError(f"SDXL checkpoint not found: {path} is not a directory (download it first, e.g. "
                         "`hf download stabilityai/stable-diffusion-xl-base-1.0 --local-dir DIR`)")
    index = _read_json(path / "model_index.json", "a diffusers pipeline checkpoint needs model_index.json")
    if index.get("_class_name") not in PIPELINE_CLASSES:
        raise BuildError(f"unsupported checkpoint {path}: model_index.json says {index.get('_class_name')!r}; "
                         f"this builder supports {', '.join(PIPELINE_CLASSES)} (SDXL base text-to-image)")
    missing = [c for c in COMPONENTS if not (path / c).is_dir()]
    if missing:
        raise BuildError(f"incomplete SDXL checkpoint {path}: missing component folders {', '.join(missing)}")
    unet = _read_json(path / "unet" / "config.json", "the UNet config is required")
    if unet.get("addition_embed_type") != "text_time":
        raise BuildError(f"unsupported UNet in {path}: addition_embed_type={unet.get('addition_embed_type')!r}, "
                         "SDXL needs 'text_time' conditioning")
    vae = _read_json(path / "vae" / "config.json", "the VAE config is required")
    scheduler = _read_json(path / "scheduler" / "scheduler_config.json", "the scheduler config is required")
    if not hasattr(diffusers, scheduler.get("_class_name", "")):
        raise BuildError(f"unsupported scheduler {scheduler.get('_class_name')!r} in {path}: not a diffusers class")
    return SdxlCheckpoint(path=path, force_zeros_for_empty_prompt=bool(index.get("force_zeros_for_empty_prompt", True)),
                          scheduler_class=scheduler["_class_name"],
                          vae_scale_factor=2 ** (len(vae["block_out_channels"]) - 1),
                          sample_size=int(unet["sample_size"]),
                          size_multiple=2 ** (len(vae["block_out_channels"]) - 1 + len(unet["down_block_types"]) - 1))


def _read_json(path: Path, why: str) -> dict:
    if not path.is_file():
        raise BuildError(f"{path} is missing: {why}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BuildError(f"{path} is not valid JSON: {exc}") from exc
