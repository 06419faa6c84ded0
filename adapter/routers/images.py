"""POST /v1/images/generations (adapter/images: protocol and service)."""
from fastapi import APIRouter, Request, Response

from adapter.images.protocol import ImageGenerationRequest
from adapter.images.service import generate_images
from adapter.paths import IMAGES_GENERATIONS
from adapter.routers.json_body_route import JSONBodyRoute

router = APIRouter(route_class=JSONBodyRoute)


@router.post(IMAGES_GENERATIONS)
async def images_generations(body: ImageGenerationRequest, request: Request) -> Response:
    state = request.app.state
    return await generate_images(body, state.triton, state.registry)
