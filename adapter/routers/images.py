"""POST /v1/images/generations: validate against the model's config, call its Triton pipeline model, PNG -> base64."""
from __future__ import annotations

import base64
import secrets

import numpy as np
import orjson
from fastapi import APIRouter, Depends, Response

from adapter.deps import get_registry, get_triton
from adapter.errors import invalid_request
from adapter.images_protocol import ImageGenerationRequest, images_response, parse_size
from adapter.model_registry import ModelRegistry
from adapter.triton_client import TritonClient
from runtime.contract import Task
from runtime.errors import ClientError
from runtime.sdxl.config import GenerationRequest, ImageModelConfig

router = APIRouter(prefix="/v1")


@router.post("/images/generations")
async def generate_images(body: ImageGenerationRequest, registry: ModelRegistry = Depends(get_registry),
                          triton: TritonClient = Depends(get_triton)) -> Response:
    body.check_response_format()
    model = await registry.resolve(body.model, Task.IMAGE_GENERATION)
    req = to_generation_request(body, ImageModelConfig.from_parameters(model.parameters))
    outputs = await triton.infer(model.id, triton_inputs(req), outputs=["IMAGES"])
    payload = images_response([base64.b64encode(png).decode("ascii") for png in outputs["IMAGES"].reshape(-1)])
    return Response(orjson.dumps(payload), media_type="application/json")  # no response-model pass over ~MBs


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
