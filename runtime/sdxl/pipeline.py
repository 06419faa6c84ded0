"""SDXL text-to-image over engine sessions.

The steps of diffusers' StableDiffusionXLPipeline in the same order and with the same random draws (image i's
latents come from torch.Generator().manual_seed(seed + i)), so a seed gives the image that diffusers gives with
`generator=[torch.Generator().manual_seed(seed + i) for i in range(n)]`. The scheduler is diffusers' own, built
from the checkpoint's scheduler config.
Shapes: B = images in the batch (all its requests), C = 2B rows under classifier-free guidance (CFG), else B.
"""
from __future__ import annotations

import inspect
import io
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import diffusers
import numpy as np
import torch
from diffusers.image_processor import VaeImageProcessor
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image
from transformers import CLIPTokenizer

from runtime.sdxl.batching import batch_key
from runtime.sdxl.config import GenerationRequest
from runtime.sdxl.engines import Engine, EngineFactory, load_engines


@dataclass(frozen=True)
class Conditioning:
    hidden: np.ndarray  # [C, 77, D1 + D2] penultimate states of both encoders; negatives first under CFG
    pooled: np.ndarray  # [C, P] text_encoder_2's text_embeds
    time_ids: np.ndarray  # [C, 6] original size, crop top-left, target size (height first)


class SdxlPipeline:
    def __init__(self, engines: dict[str, Engine], tokenizers: list[CLIPTokenizer], scheduler_config: dict,
                 vae_config: dict, force_zeros_for_empty_prompt: bool = True, device: str = "cpu"):
        self.engines, self.tokenizers = engines, tokenizers
        self.device = torch.device(device)  # where latents live through the loop (engines run_tensors there)
        self.scheduler_cls = getattr(diffusers, scheduler_config["_class_name"])
        self.scheduler_config, self.vae_config = scheduler_config, vae_config
        self.force_zeros = force_zeros_for_empty_prompt
        self.vae_scale_factor = 2 ** (len(vae_config["block_out_channels"]) - 1)
        self.image_processor = VaeImageProcessor(vae_scale_factor=self.vae_scale_factor)
        self._tokenizer_lock = threading.Lock()  # HF fast tokenizers are not safe to configure concurrently

    @classmethod
    def from_dir(cls, model_dir: Path, factory: EngineFactory, force_zeros_for_empty_prompt: bool = True,
                 device: str = "cpu") -> "SdxlPipeline":
        """A model folder written by builders.sdxl: engines/, tokenizer/, tokenizer_2/, scheduler/, vae/."""
        model_dir = Path(model_dir)
        tokenizers = [CLIPTokenizer.from_pretrained(model_dir / name) for name in ("tokenizer", "tokenizer_2")]
        return cls(load_engines(model_dir / "engines", factory), tokenizers,
                   json.loads((model_dir / "scheduler" / "scheduler_config.json").read_text()),
                   json.loads((model_dir / "vae" / "config.json").read_text()), force_zeros_for_empty_prompt, device)

    def generate(self, req: GenerationRequest) -> list[Image.Image]:
        return self.generate_batch([req])[0]

    def generate_batch(self, reqs: list[GenerationRequest]) -> list[list[Image.Image]]:
        """Requests that share size, steps and guidance, denoised as one UNet batch; images per request."""
        first = reqs[0]
        if any(batch_key(r) != batch_key(first) for r in reqs):
            raise ValueError("generate_batch needs requests with one batch_key (see plan_batches)")
        generators = [torch.Generator("cpu").manual_seed(r.seed + i) for r in reqs for i in range(r.n)]
        guidance = first.guidance if first.guidance > 1.0 else None  # diffusers skips CFG at guidance <= 1
        cond = merge([self.condition(r, guidance is not None) for r in reqs], guidance is not None)
        scheduler = self.new_scheduler(first.steps)
        # drawn on the CPU (the same seed gives the same image on every device), then moved once
        latents = self.initial_latents(len(generators), first.width, first.height, scheduler, generators)
        latents = latents.to(self.device)
        images = self.decode(self.denoise(latents, cond, scheduler, guidance, generators))
        bounds = np.cumsum([0] + [r.n for r in reqs])
        return [images[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    def generate_png(self, req: GenerationRequest) -> list[bytes]:
        return [to_png(image) for image in self.generate(req)]

    # -- prompt encoding --
    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """texts -> ([k, 77, D1 + D2] penultimate hidden states, [k, P] pooled text_embeds)."""
        first = self.engines["text_encoder"].run({"input_ids": self._input_ids(self.tokenizers[0], texts)})
        second = self.engines["text_encoder_2"].run({"input_ids": self._input_ids(self.tokenizers[1], texts)})
        return np.concatenate([first["hidden_states"], second["hidden_states"]], axis=-1), second["text_embeds"]

    def condition(self, req: GenerationRequest, cfg: bool) -> Conditioning:
        if not cfg:
            hidden, pooled = self.encode([req.prompt])
        elif req.negative_prompt is None and self.force_zeros:
            hidden, pooled = self.encode([req.prompt])
            hidden, pooled = _with_zeros_first(hidden), _with_zeros_first(pooled)
        else:
            hidden, pooled = self.encode([req.negative_prompt or "", req.prompt])
        # one row per image: [neg] * n + [pos] * n
        hidden, pooled = np.repeat(hidden, req.n, axis=0), np.repeat(pooled, req.n, axis=0)
        time_ids = np.tile(np.array([[req.height, req.width, 0, 0, req.height, req.width]], np.float32),
                           (len(hidden), 1))
        return Conditioning(hidden, pooled, time_ids)

    def _input_ids(self, tokenizer: CLIPTokenizer, texts: list[str]) -> np.ndarray:
        with self._tokenizer_lock:
            ids = tokenizer(texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                            return_tensors="np").input_ids
        return ids.astype(np.int64)

    # -- denoising --
    def new_scheduler(self, steps: int):
        scheduler = self.scheduler_cls.from_config(self.scheduler_config)  # per request: schedulers are stateful
        scheduler.set_timesteps(steps, device=self.device)
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(0)
        return scheduler

    def initial_latents(self, count: int, width: int, height: int, scheduler, generators: list[torch.Generator]
                        ) -> torch.Tensor:
        channels = self.vae_config["latent_channels"]
        shape = (count, channels, height // self.vae_scale_factor, width // self.vae_scale_factor)  # [B, 4, h, w]
        generator = generators if len(generators) > 1 else generators[0]
        return randn_tensor(shape, generator=generator, dtype=torch.float32) * scheduler.init_noise_sigma

    def denoise(self, latents: torch.Tensor, cond: Conditioning, scheduler, guidance: float | None,
                generators: list[torch.Generator]) -> torch.Tensor:
        step_kwargs = _step_kwargs(scheduler, generators)
        conditioning = {"encoder_hidden_states": cond.hidden, "text_embeds": cond.pooled, "time_ids": cond.time_ids}
        conditioning = {name: torch.from_numpy(value).to(self.device) for name, value in conditioning.items()}
        for t in scheduler.timesteps:
            model_input = torch.cat([latents] * 2) if guidance is not None else latents  # [C, 4, h, w]
            model_input = scheduler.scale_model_input(model_input, t)
            noise = self.unet(model_input, t, conditioning)
            if guidance is not None:
                uncond, text = noise.chunk(2)
                noise = uncond + guidance * (text - uncond)
            latents = scheduler.step(noise, t, latents, **step_kwargs, return_dict=False)[0]
        return latents

    def unet(self, model_input: torch.Tensor, t: torch.Tensor, conditioning: dict[str, torch.Tensor]) -> torch.Tensor:
        feeds = {"sample": model_input.contiguous(), "timestep": t.reshape(1).to(torch.float32), **conditioning}
        return self.engines["unet"].run_tensors(feeds, {"noise_pred": tuple(model_input.shape)})["noise_pred"]

    # -- decoding --
    def decode(self, latents: torch.Tensor) -> list[Image.Image]:
        scaling = self.vae_config["scaling_factor"]
        mean, std = self.vae_config.get("latents_mean"), self.vae_config.get("latents_std")
        if mean is not None and std is not None:
            std_t, mean_t = (torch.tensor(v, device=latents.device).view(1, -1, 1, 1) for v in (std, mean))
            latents = latents * std_t / scaling + mean_t
        else:
            latents = latents / scaling
        b, _, h, w = latents.shape
        shape = (b, 3, h * self.vae_scale_factor, w * self.vae_scale_factor)  # [B, 3, H, W] in [-1, 1]
        image = self.engines["vae_decoder"].run_tensors({"latents": latents.contiguous()}, {"image": shape})["image"]
        return self.image_processor.postprocess(image.cpu(), output_type="pil")


def merge(conds: list[Conditioning], cfg: bool) -> Conditioning:
    """Stack requests' conditioning; under CFG all negative halves come first, then all positive halves."""
    if len(conds) == 1:
        return conds[0]
    fields = []
    for name in ("hidden", "pooled", "time_ids"):
        parts = [getattr(c, name) for c in conds]
        if cfg:
            halves = [np.split(p, 2) for p in parts]
            parts = [h[0] for h in halves] + [h[1] for h in halves]
        fields.append(np.concatenate(parts))
    return Conditioning(*fields)


def to_png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _with_zeros_first(x: np.ndarray) -> np.ndarray:
    return np.concatenate([np.zeros_like(x), x])


def _step_kwargs(scheduler, generators: list[torch.Generator]) -> dict:
    """What diffusers' prepare_extra_step_kwargs passes: eta=0 and the generator, when step() takes them."""
    accepted = inspect.signature(scheduler.step).parameters
    kwargs: dict = {}
    if "eta" in accepted:
        kwargs["eta"] = 0.0
    if "generator" in accepted:
        kwargs["generator"] = generators if len(generators) > 1 else generators[0]
    return kwargs
