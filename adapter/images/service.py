"""Request -> the pipeline's request, validated against the model's config -> Triton -> base64 PNGs."""
from __future__ import annotations

import base64

import orjson
from fastapi import Response

from adapter.images.protocol import ImageGenerationRequest, images_response, to_generation_request, triton_inputs
from adapter.model_registry import ModelRegistry
from adapter.triton_client import TritonClient
from runtime.contract import Task
from runtime.sdxl.config import ImageModelConfig


async def generate_images(body: ImageGenerationRequest, triton: TritonClient, registry: ModelRegistry) -> Response:
    body.check_response_format()
    model = await registry.resolve(body.model, Task.IMAGE_GENERATION)
    req = to_generation_request(body, ImageModelConfig.from_parameters(model.parameters))
    outputs = await triton.infer(model.id, triton_inputs(req), outputs=["IMAGES"])
    payload = images_response([base64.b64encode(png).decode("ascii") for png in outputs["IMAGES"].reshape(-1)])
    return Response(orjson.dumps(payload), media_type="application/json")  # no response-model pass over ~MBs
