"""Wire protocol of POST /v1/images/generations (OpenAI CreateImageRequest / ImagesResponse), SDXL extensions.

`to_generation_request` fills the model's defaults and validates with the pipeline model's own rules
(runtime/sdxl/config.py), so a direct Triton caller meets the same ones; `triton_inputs` is its wire form.
"""
from __future__ import annotations

import re
import secrets
import time
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from adapter.errors import invalid_request
from adapter.protocol import OpenAIRequest
from runtime.errors import ClientError
from runtime.sdxl.config import MAX_IMAGES, GenerationRequest, ImageModelConfig

_SIZE = re.compile(r"^\s*(\d{1,5})\s*[x*]\s*(\d{1,5})\s*$", re.IGNORECASE)


class ImageGenerationRequest(OpenAIRequest):
    # In the order of OpenAI's docs (quality, style, background, ... are accepted and ignored).
    prompt: str
    model: str
    n: int = Field(1, ge=1, le=MAX_IMAGES)
    response_format: Literal["b64_json", "url"] | None = "b64_json"
    size: str | None = None  # WIDTHxHEIGHT or WIDTH*HEIGHT; None or "auto": the model's default
    user: str | None = None
    # Extensions (diffusers' names)
    negative_prompt: str | None = None
    seed: int | None = Field(None, ge=0, le=2**63 - 1 - MAX_IMAGES)  # image i uses seed + i
    num_inference_steps: int | None = Field(None, ge=1)  # upper bound: the model's max_steps
    guidance_scale: float | None = Field(None, ge=0.0)  # upper bound: the model's max_guidance

    @field_validator("prompt")
    @classmethod
    def _non_empty(cls, prompt: str) -> str:
        if not prompt.strip():
            raise ValueError("prompt must be a non-empty string")
        return prompt

    def check_response_format(self) -> None:
        if self.response_format == "url":
            raise invalid_request("response_format 'url' is not supported: this server returns images inline; "
                                  "only 'b64_json' is served.", "response_format", "unsupported_response_format")


def parse_size(text: str) -> tuple[int, int] | None:
    """'1024x768' or '1024*768' -> (1024, 768); None when malformed."""
    match = _SIZE.match(text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def images_response(pngs_b64: list[str]) -> dict:
    return {"created": int(time.time()), "output_format": "png",
            "data": [{"b64_json": b64, "url": None, "revised_prompt": None} for b64 in pngs_b64]}


def to_generation_request(body: ImageGenerationRequest, config: ImageModelConfig) -> GenerationRequest:
    """Fill the model's defaults and validate with the same rules the pipeline model applies."""
    width, height = config.default_size if body.size in (None, "auto") else _size(body.size, config)
    req = GenerationRequest(
        prompt=body.prompt, negative_prompt=body.negative_prompt, n=body.n, width=width, height=height,
        steps=body.num_inference_steps or config.default_steps,
        guidance=config.default_guidance if body.guidance_scale is None else body.guidance_scale,
        seed=secrets.randbelow(2**32) if body.seed is None else body.seed)
    try:
        config.validate(req)
    except ClientError as exc:
        raise invalid_request(exc.message, exc.param, exc.code) from exc
    return req


def triton_inputs(req: GenerationRequest) -> dict[str, np.ndarray]:
    """One [1, 1] tensor per field: batch dim of the model's dynamic batcher, then the value."""
    values = {"PROMPT": (req.prompt, np.object_), "N": (req.n, np.int32), "WIDTH": (req.width, np.int32),
              "HEIGHT": (req.height, np.int32), "STEPS": (req.steps, np.int32),
              "GUIDANCE": (req.guidance, np.float32), "SEED": (req.seed, np.int64)}
    if req.negative_prompt is not None:
        values["NEGATIVE_PROMPT"] = (req.negative_prompt, np.object_)
    return {name: np.array([[value]], dtype=dtype) for name, (value, dtype) in values.items()}


def _size(text: str, config: ImageModelConfig) -> tuple[int, int]:
    size = parse_size(text)
    if size is None:
        raise invalid_request(f"Invalid size '{text}': use WIDTHxHEIGHT or WIDTH*HEIGHT. Supported sizes: "
                              f"{config.supported_sizes_text()}.", "size", "invalid_size")
    return size
