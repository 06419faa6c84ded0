"""Triton request <-> GenerationRequest for the SDXL pipeline model (pb_utils passed in, never imported)."""
from __future__ import annotations

import secrets
from typing import Any

import numpy as np

from runtime.sdxl.config import GenerationRequest, ImageModelConfig
from runtime.triton_shell import input_scalar


def parse_request(pb_utils: Any, request: Any, config: ImageModelConfig) -> GenerationRequest:
    """Missing optional inputs take the model defaults; the result is validated (ClientError on bad input)."""
    def get(name: str, default: Any = None) -> Any:
        return input_scalar(pb_utils, request, name, default)

    width, height = config.default_size
    req = GenerationRequest(
        prompt=get("PROMPT", ""), negative_prompt=get("NEGATIVE_PROMPT"), n=int(get("N", 1)),
        width=int(get("WIDTH", width)), height=int(get("HEIGHT", height)),
        steps=int(get("STEPS", config.default_steps)),
        guidance=float(get("GUIDANCE", config.default_guidance)), seed=int(get("SEED", secrets.randbelow(2**32))))
    config.validate(req)
    return req


def images_response(pb_utils: Any, pngs: list[bytes]) -> Any:
    images = np.array(pngs, dtype=np.object_).reshape(1, -1)  # [1, n]: batch dim of the dynamic batcher
    return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("IMAGES", images)])
