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
from onnx.external_data_helper import (load_external_data_for_model, load_external_data_for_tensor,
                                       uses_external_data)
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
            paths[name] = export_onnx(lambda: _SPECS[name](ckpt), out_dir / f"{name}.onnx", external_data)
    return paths


def export_onnx(make_spec: Callable[[], EngineSpec], path: Path, external_data: ExternalData) -> Path:
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        traced = Path(tmp) / "model.onnx"  # torch writes >2 GB models as one file per tensor beside it
        _trace(make_spec(), traced)  # the torch module is freed before the weights are rewritten
        save_onnx(traced, path, external_data)
    onnx.checker.check_model(str(path))
    return path


def _trace(spec: EngineSpec, traced: Path) -> None:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings on shape asserts: sizes are validated by the builder
        torch.onnx.export(spec.module, spec.args, str(traced), input_names=spec.inputs, output_names=spec.outputs,
                          dynamic_axes=spec.dynamic_axes, opset_version=OPSET, do_constant_folding=True,
                          dynamo=False)


def save_onnx(traced: Path, path: Path, external_data: ExternalData) -> None:
    """Inline weights, or all of them in one <engine>.onnx.data beside the .onnx (where ORT and TensorRT's parser
    look), written one tensor at a time so a 10 GB UNet never sits in memory twice."""
    model = onnx.load(str(traced), load_external_data=False)
    data = path.with_name(path.name + ".data")
    data.unlink(missing_ok=True)  # a stale file would keep its old mode and contents
    big = _weight_bytes(model, traced.parent) > _PROTOBUF_LIMIT
    external = external_data == "always" or (external_data == "auto" and big)
    if not external:
        load_external_data_for_model(model, str(traced.parent))
        onnx.save_model(model, str(path))
        return
    with data.open("wb") as out:
        for tensor in model.graph.initializer:
            if uses_external_data(tensor):
                load_external_data_for_tensor(tensor, str(traced.parent))
            if tensor.HasField("raw_data"):
                _move_to_file(tensor, out, data.name)
    onnx.save_model(model, str(path))


def _move_to_file(tensor: onnx.TensorProto, out, location: str) -> None:
    offset = out.tell()
    out.write(tensor.raw_data)
    tensor.ClearField("raw_data")
    del tensor.external_data[:]
    tensor.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(out.tell() - offset))):
        tensor.external_data.add(key=key, value=value)


def _weight_bytes(model: onnx.ModelProto, base: Path) -> int:
    total = 0
    for tensor in model.graph.initializer:
        info = {e.key: e.value for e in tensor.external_data}
        if not uses_external_data(tensor):
            total += len(tensor.raw_data)
        else:
            total += int(info["length"]) if "length" in info else (base / info["location"]).stat().st_size
    return total


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
