"""Wire protocol of POST /v1/images/generations (OpenAI CreateImageRequest / ImagesResponse), SDXL extensions."""
from __future__ import annotations

import re
import time
from typing import Literal

from pydantic import Field, field_validator

from adapter.errors import invalid_request
from adapter.protocol import OpenAIRequest
from runtime.sdxl.config import MAX_IMAGES

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
