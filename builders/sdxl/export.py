"""SDXL checkpoint -> one ONNX file per engine (fp32), optionally with ONNX external data.

Engines and their I/O (what runtime/sdxl expects):
  text_encoder    input_ids[B,77] int64 -> hidden_states[B,77,768]   (penultimate layer, as SDXL uses)
  text_encoder_2  input_ids[B,77] int64 -> hidden_states[B,77,1280], text_embeds[B,1280] (pooled projection)
  unet            sample[B,4,h,w], timestep[1], encoder_hidden_states[B,77,2048], text_embeds[B,1280],
                  time_ids[B,6] -> noise_pred[B,4,h,w]               (text_time conditioning)
  vae_decoder     latents[B,4,h,w] (already / scaling_factor) -> image[B,3,8h,8w] in [-1, 1]
The VAE stays fp32 (SDXL's VAE overflows in fp16). Export writes ONNX only; placing files is place.py's job.
"""
from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import onnx
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTextModelWithProjection

from builders.progress import step
from builders.sdxl.checkpoint import SdxlCheckpoint

ExternalData = Literal["auto", "always", "never"]
ENGINES = ("text_encoder", "text_encoder_2", "unet", "vae_decoder")
OPSET = 17
_PROTOBUF_LIMIT = 2 * 1024**3 - 64 * 1024**2  # stay clear of protobuf's 2 GiB message limit


class _TextEncoder(torch.nn.Module):
    def __init__(self, encoder: torch.nn.Module, pooled: bool):
        super().__init__()
        self.encoder, self.pooled = encoder, pooled

    def forward(self, input_ids):
        out = self.encoder(input_ids, output_hidden_states=True)
        hidden = out.hidden_states[-2]
        return (hidden, out.text_embeds) if self.pooled else hidden


class _Unet(torch.nn.Module):
    def __init__(self, unet: UNet2DConditionModel):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states, text_embeds, time_ids):
        cond = {"text_embeds": text_embeds, "time_ids": time_ids}
        return self.unet(sample, timestep, encoder_hidden_states, added_cond_kwargs=cond, return_dict=False)[0]


class _VaeDecoder(torch.nn.Module):
    def __init__(self, vae: AutoencoderKL):
        super().__init__()
        self.vae = vae

    def forward(self, latents):
        return self.vae.decode(latents, return_dict=False)[0]


@dataclass(frozen=True)
class EngineSpec:
    module: torch.nn.Module
    args: tuple[torch.Tensor, ...]
    inputs: list[str]
    outputs: list[str]
    dynamic_axes: dict[str, dict[int, str]]


def export_engines(ckpt: SdxlCheckpoint, out_dir: Path, external_data: ExternalData = "auto") -> dict[str, Path]:
    """Export all four engines to out_dir/<engine>.onnx (+ <engine>.onnx.data); returns engine -> path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in ENGINES:
        with step(f"export {name} to ONNX"):
            spec = _SPECS[name](ckpt)
            paths[name] = export_onnx(spec, out_dir / f"{name}.onnx", external_data)
            del spec
    return paths


def export_onnx(spec: EngineSpec, path: Path, external_data: ExternalData) -> Path:
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings on shape asserts: sizes are validated by the builder
        traced = Path(tmp) / "model.onnx"  # torch may write >2 GB models as many external files here
        torch.onnx.export(spec.module, spec.args, str(traced), input_names=spec.inputs, output_names=spec.outputs,
                          dynamic_axes=spec.dynamic_axes, opset_version=OPSET, do_constant_folding=True,
                          dynamo=False)
        model = onnx.load(str(traced))  # pulls external tensors into memory
        _save(model, path, external_data)
    onnx.checker.check_model(str(path))
    return path


def _save(model: onnx.ModelProto, path: Path, external_data: ExternalData) -> None:
    data = path.with_name(path.name + ".data")
    data.unlink(missing_ok=True)
    external = external_data == "always" or (external_data == "auto" and model.ByteSize() > _PROTOBUF_LIMIT)
    # One data file per engine, next to the .onnx, so ORT (and TensorRT's parser) find it by relative location.
    onnx.save_model(model, str(path), save_as_external_data=external, all_tensors_to_one_file=True,
                    location=data.name, size_threshold=0)


def _text_encoder_spec(ckpt: SdxlCheckpoint, name: str, cls, pooled: bool) -> EngineSpec:
    encoder = cls.from_pretrained(ckpt.component(name), torch_dtype=torch.float32, attn_implementation="eager",
                                  variant=ckpt.variant(name)).eval()
    ids = torch.zeros(2, encoder.config.max_position_embeddings, dtype=torch.int64)
    outputs = ["hidden_states", "text_embeds"] if pooled else ["hidden_states"]
    return EngineSpec(_TextEncoder(encoder, pooled), (ids,), ["input_ids"], outputs,
                      {n: {0: "batch"} for n in ["input_ids", *outputs]})


def _unet_spec(ckpt: SdxlCheckpoint) -> EngineSpec:
    unet = UNet2DConditionModel.from_pretrained(ckpt.component("unet"), torch_dtype=torch.float32,
                                                variant=ckpt.variant("unet"), low_cpu_mem_usage=False).eval()
    cfg, side = unet.config, min(ckpt.sample_size, 32)  # a small trace is enough: h and w are dynamic
    text_embed_dim = cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim
    args = (torch.randn(2, cfg.in_channels, side, side), torch.tensor([999.0]),
            torch.randn(2, 77, cfg.cross_attention_dim), torch.randn(2, text_embed_dim), torch.ones(2, 6) * side * 8)
    names = ["sample", "timestep", "encoder_hidden_states", "text_embeds", "time_ids"]
    axes = {"sample": {0: "batch", 2: "height", 3: "width"}, "encoder_hidden_states": {0: "batch"},
            "text_embeds": {0: "batch"}, "time_ids": {0: "batch"}, "noise_pred": {0: "batch", 2: "height", 3: "width"}}
    return EngineSpec(_Unet(unet), args, names, ["noise_pred"], axes)


def _vae_decoder_spec(ckpt: SdxlCheckpoint) -> EngineSpec:
    vae = AutoencoderKL.from_pretrained(ckpt.component("vae"), torch_dtype=torch.float32,
                                        variant=ckpt.variant("vae"), low_cpu_mem_usage=False).eval()
    side = min(ckpt.sample_size, 32)
    axes = {"latents": {0: "batch", 2: "height", 3: "width"}, "image": {0: "batch", 2: "height", 3: "width"}}
    return EngineSpec(_VaeDecoder(vae), (torch.randn(1, vae.config.latent_channels, side, side),), ["latents"],
                      ["image"], axes)


_SPECS: dict[str, Callable[[SdxlCheckpoint], EngineSpec]] = {
    "text_encoder": lambda c: _text_encoder_spec(c, "text_encoder", CLIPTextModel, pooled=False),
    "text_encoder_2": lambda c: _text_encoder_spec(c, "text_encoder_2", CLIPTextModelWithProjection, pooled=True),
    "unet": _unet_spec,
    "vae_decoder": _vae_decoder_spec,
}
