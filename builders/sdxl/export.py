"""SDXL checkpoint -> one ONNX file per engine (fp32 or fp16 weights), optionally with ONNX external data.

Engines and their I/O (what runtime/sdxl expects):
  text_encoder    input_ids[B,77] int64 -> hidden_states[B,77,768]   (penultimate layer, as SDXL uses)
  text_encoder_2  input_ids[B,77] int64 -> hidden_states[B,77,1280], text_embeds[B,1280] (pooled projection)
  unet            sample[B,4,h,w], timestep[1], encoder_hidden_states[B,77,2048], text_embeds[B,1280],
                  time_ids[B,6] -> noise_pred[B,4,h,w]               (text_time conditioning)
  vae_decoder     latents[B,4,h,w] (already / scaling_factor) -> image[B,3,8h,8w] in [-1, 1]
Graph inputs and outputs stay fp32 whatever the weights' dtype (casts inside the graph), so the runtime does not
change. The VAE stays fp32 (SDXL's VAE overflows in fp16). Each engine is loaded in its export dtype, its weights
streamed to external data (builders/onnx_export.py) and the module freed before the next one is loaded or ONNX
Runtime checks the graph: at most one engine's weights in memory at a time, once.
Export writes ONNX only; placing files is place.py's job.
"""
from __future__ import annotations

import gc
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Mapping

import onnx
import torch
from onnx.external_data_helper import (load_external_data_for_model, load_external_data_for_tensor,
                                       uses_external_data)
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTextModelWithProjection

from builders.onnx_export import (PROTOBUF_LIMIT, Exported, check_session, export_streaming, max_abs_diff,
                                  weight_bytes)
from builders.progress import BuildError, step
from builders.sdxl.checkpoint import SdxlCheckpoint

ExternalData = Literal["auto", "always", "never"]
ENGINES = ("text_encoder", "text_encoder_2", "unet", "vae_decoder")
OPSET = 17
DTYPES = {"fp32": torch.float32, "fp16": torch.float16}
# Latent side of the trace and check inputs: h and w stay dynamic in the graph, and 8 survives SDXL's two
# downsamplings; larger traces cost minutes of CPU time at the real size (fp16 math on CPU is slow).
TRACE_SIDE = 8


class _TextEncoder(torch.nn.Module):
    def __init__(self, encoder: torch.nn.Module, pooled: bool):
        super().__init__()
        self.encoder, self.pooled = encoder, pooled

    def forward(self, input_ids):
        out = self.encoder(input_ids, output_hidden_states=True)
        hidden = out.hidden_states[-2].float()
        return (hidden, out.text_embeds.float()) if self.pooled else hidden


class _Unet(torch.nn.Module):
    def __init__(self, unet: UNet2DConditionModel):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states, text_embeds, time_ids):
        dtype = self.unet.dtype  # fp32 in and out; the weights' dtype inside
        cond = {"text_embeds": text_embeds.to(dtype), "time_ids": time_ids.to(dtype)}
        noise = self.unet(sample.to(dtype), timestep, encoder_hidden_states.to(dtype), added_cond_kwargs=cond,
                          return_dict=False)[0]
        return noise.float()


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


def export_engines(ckpt: SdxlCheckpoint, out_dir: Path, external_data: ExternalData = "auto",
                   dtypes: Mapping[str, str] | None = None) -> dict[str, Path]:
    """Export all four engines to out_dir/<engine>.onnx (+ <engine>.onnx.data), each in its dtype from
    `dtypes` (default fp32); returns engine -> path."""
    dtypes = dtypes or {}
    return {name: export_engine(ckpt, name, out_dir, external_data, dtypes.get(name, "fp32")).path
            for name in ENGINES}


def export_engine(ckpt: SdxlCheckpoint, name: str, out_dir: Path, external_data: ExternalData = "auto",
                  dtype: str = "fp32", check: bool = False) -> Exported:
    """One engine; with check, ONNX Runtime's outputs are compared with PyTorch's on the trace inputs."""
    if dtype not in DTYPES:  # bf16: ONNX Runtime's CUDA kernels for the UNet's convolutions are fp32/fp16
        raise BuildError(f"SDXL {name}: no {dtype} export (choose one of {', '.join(DTYPES)})")
    out_dir.mkdir(parents=True, exist_ok=True)
    with step(f"export {name} to ONNX ({'fp32' if name == 'vae_decoder' else dtype})"):
        return export_onnx(lambda: _SPECS[name](ckpt, DTYPES[dtype]), out_dir / f"{name}.onnx", external_data, check)


def export_onnx(make_spec: Callable[[], EngineSpec], path: Path, external_data: ExternalData,
                check: bool = False) -> Exported:
    spec = make_spec()
    args, outputs = spec.args, spec.outputs
    if check:
        with torch.no_grad():
            expected = spec.module(*args)
        expected = [t.numpy() for t in (expected if isinstance(expected, tuple) else (expected,))]
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        traced = Path(tmp) / "model.onnx"
        weights = export_streaming(spec.module, args, traced, input_names=spec.inputs, output_names=outputs,
                                   dynamic_axes=spec.dynamic_axes, opset_version=OPSET)
        del spec
        gc.collect()  # the torch module goes before its weights are rewritten or loaded by ONNX Runtime
        save_onnx(traced, path, external_data)
    onnx.checker.check_model(str(path))
    if not check:
        return Exported(path, weights)
    with step(f"check {path.name} with ONNX Runtime against PyTorch"):
        session = check_session(path)
        got = session.run(outputs, {i.name: a.numpy() for i, a in zip(session.get_inputs(), args)})
    return Exported(path, weights, max(max_abs_diff(g, e) for g, e in zip(got, expected)))


def save_onnx(traced: Path, path: Path, external_data: ExternalData) -> None:
    """Inline weights, or all of them in one <engine>.onnx.data beside the .onnx (where ORT and TensorRT's parser
    look), written one tensor at a time so a 10 GB UNet never sits in memory twice."""
    model = onnx.load(str(traced), load_external_data=False)
    data = path.with_name(path.name + ".data")
    data.unlink(missing_ok=True)  # a stale file would keep its old mode and contents
    big = weight_bytes(model, traced.parent) > PROTOBUF_LIMIT
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


def _text_encoder_spec(ckpt: SdxlCheckpoint, name: str, cls, pooled: bool, dtype: torch.dtype) -> EngineSpec:
    encoder = cls.from_pretrained(ckpt.component(name), dtype=dtype, attn_implementation="eager",
                                  variant=ckpt.variant(name)).eval()
    ids = torch.zeros(2, encoder.config.max_position_embeddings, dtype=torch.int64)
    outputs = ["hidden_states", "text_embeds"] if pooled else ["hidden_states"]
    return EngineSpec(_TextEncoder(encoder, pooled), (ids,), ["input_ids"], outputs,
                      {n: {0: "batch"} for n in ["input_ids", *outputs]})


def _unet_spec(ckpt: SdxlCheckpoint, dtype: torch.dtype) -> EngineSpec:
    # low_cpu_mem_usage: no randomly initialised fp32 model first (needs accelerate)
    unet = UNet2DConditionModel.from_pretrained(ckpt.component("unet"), torch_dtype=dtype,
                                                variant=ckpt.variant("unet"), low_cpu_mem_usage=True).eval()
    cfg, side = unet.config, min(ckpt.sample_size, TRACE_SIDE)
    text_embed_dim = cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim
    args = (torch.randn(2, cfg.in_channels, side, side), torch.tensor([999.0]),
            torch.randn(2, 77, cfg.cross_attention_dim), torch.randn(2, text_embed_dim), torch.ones(2, 6) * side * 8)
    names = ["sample", "timestep", "encoder_hidden_states", "text_embeds", "time_ids"]
    axes = {"sample": {0: "batch", 2: "height", 3: "width"}, "encoder_hidden_states": {0: "batch"},
            "text_embeds": {0: "batch"}, "time_ids": {0: "batch"}, "noise_pred": {0: "batch", 2: "height", 3: "width"}}
    return EngineSpec(_Unet(unet), args, names, ["noise_pred"], axes)


def _vae_decoder_spec(ckpt: SdxlCheckpoint, dtype: torch.dtype) -> EngineSpec:
    del dtype  # SDXL's VAE overflows in fp16: always fp32
    vae = AutoencoderKL.from_pretrained(ckpt.component("vae"), torch_dtype=torch.float32,
                                        variant=ckpt.variant("vae"), low_cpu_mem_usage=True).eval()
    side = min(ckpt.sample_size, TRACE_SIDE)
    axes = {"latents": {0: "batch", 2: "height", 3: "width"}, "image": {0: "batch", 2: "height", 3: "width"}}
    return EngineSpec(_VaeDecoder(vae), (torch.randn(1, vae.config.latent_channels, side, side),), ["latents"],
                      ["image"], axes)


_SPECS: dict[str, Callable[[SdxlCheckpoint, torch.dtype], EngineSpec]] = {
    "text_encoder": lambda c, d: _text_encoder_spec(c, "text_encoder", CLIPTextModel, False, d),
    "text_encoder_2": lambda c, d: _text_encoder_spec(c, "text_encoder_2", CLIPTextModelWithProjection, True, d),
    "unet": _unet_spec,
    "vae_decoder": _vae_decoder_spec,
}
