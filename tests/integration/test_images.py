"""/v1/images/generations end to end: real tritonserver running the tiny-sdxl pipeline model, real adapter.

The served image for a seed must equal diffusers' StableDiffusionXLPipeline image for the same tiny checkpoint
(rebuilt here from its seed: the maker is deterministic), seed and size.
"""
from __future__ import annotations

import asyncio
import base64
import io

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionXLPipeline
from PIL import Image

from builders.sdxl import TINY_ID
from builders.sdxl.tiny import TINY_SEED, make_tiny_sdxl

pytestmark = pytest.mark.integration

PIXEL_TOLERANCE = 2  # uint8 levels: ORT vs torch float32 differences may flip a rounding


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> StableDiffusionXLPipeline:
    checkpoint = make_tiny_sdxl(tmp_path_factory.mktemp("tiny-sdxl"), TINY_SEED)
    pipe = StableDiffusionXLPipeline.from_pretrained(checkpoint)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(http, **fields) -> list[Image.Image]:
    resp = http.post("/v1/images/generations", json={"model": TINY_ID, "prompt": "a red fox", **fields})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert isinstance(body["created"], int)
    assert all(item["url"] is None for item in body["data"])
    return [decode(item["b64_json"]) for item in body["data"]]


def decode(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    assert image.format == "PNG"
    return image.convert("RGB")


def max_diff(a: Image.Image, b: Image.Image) -> int:
    return int(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max())


def diffusers_images(pipe, prompt: str, seed: int, n: int, width: int, height: int, steps: int, guidance: float,
                     negative_prompt: str | None = None) -> list[Image.Image]:
    generators = [torch.Generator().manual_seed(seed + i) for i in range(n)]
    return pipe(prompt, negative_prompt=negative_prompt, num_images_per_prompt=n, width=width, height=height,
                num_inference_steps=steps, guidance_scale=guidance, generator=generators).images


def test_served_image_equals_diffusers_pipeline(http, reference):
    served = generate(http, size="64x64", seed=1234, num_inference_steps=4, guidance_scale=5.0)
    expected = diffusers_images(reference, "a red fox", 1234, 1, 64, 64, 4, 5.0)
    assert served[0].size == (64, 64)
    assert max_diff(served[0], expected[0]) <= PIXEL_TOLERANCE
    assert np.asarray(served[0]).std() > 5  # a real picture, not a flat fill


def test_batch_of_images_with_negative_prompt_equals_diffusers(http, reference):
    served = generate(http, n=3, size="128x64", seed=7, num_inference_steps=3, guidance_scale=7.5,
                      negative_prompt="blurry")
    expected = diffusers_images(reference, "a red fox", 7, 3, 128, 64, 3, 7.5, negative_prompt="blurry")
    assert [im.size for im in served] == [(128, 64)] * 3
    assert all(max_diff(s, e) <= PIXEL_TOLERANCE for s, e in zip(served, expected))


def test_n_images_differ_and_each_uses_its_own_seed(http):
    batch = generate(http, n=3, seed=50)
    assert len({im.tobytes() for im in batch}) == 3
    second_alone = generate(http, n=1, seed=51)[0]  # image i of a batch is the image of seed + i
    assert max_diff(batch[1], second_alone) <= PIXEL_TOLERANCE


def test_both_size_spellings_and_defaults(http):
    by_x = generate(http, size="64x128", seed=3)[0]
    by_star = generate(http, size="64*128", seed=3)[0]
    assert by_x.size == by_star.size == (64, 128)
    assert max_diff(by_x, by_star) == 0
    assert generate(http, seed=3)[0].size == (64, 64)  # the model's default size from config


def test_openai_client_b64_json(openai_client):
    result = openai_client.images.generate(model=TINY_ID, prompt="a lighthouse", n=2, size="128x128",
                                           response_format="b64_json", extra_body={"seed": 9})
    assert len(result.data) == 2
    images = [decode(item.b64_json) for item in result.data]
    assert all(im.size == (128, 128) for im in images)
    assert images[0].tobytes() != images[1].tobytes()


async def test_concurrent_requests_all_succeed(async_openai_client):
    async def one(i: int):
        return await async_openai_client.images.generate(model=TINY_ID, prompt=f"scene {i}", size="64x64",
                                                         response_format="b64_json", extra_body={"seed": i})

    results = await asyncio.gather(*(one(i) for i in range(6)))
    images = [decode(r.data[0].b64_json) for r in results]
    assert len({im.tobytes() for im in images}) == 6
    # Requests merged by the dynamic batcher give the images they give alone.
    alone = [decode((await one(i)).data[0].b64_json) for i in (0, 5)]
    assert max_diff(images[0], alone[0]) <= PIXEL_TOLERANCE and max_diff(images[5], alone[1]) <= PIXEL_TOLERANCE


@pytest.mark.parametrize("fields, param, needle", [
    ({"prompt": None}, "prompt", "prompt"),
    ({"prompt": "  "}, "prompt", "non-empty"),
    ({"n": 0}, "n", "n"),
    ({"n": 11}, "n", "n"),
    ({"size": "big"}, "size", "Supported sizes: 64x64, 128x128, 128x64, 64x128"),
    ({"size": "100x100"}, "size", "Supported sizes: 64x64, 128x128, 128x64, 64x128"),
    ({"size": "1024x1024"}, "size", "Supported sizes"),
    ({"response_format": "url"}, "response_format", "only 'b64_json' is served"),
    ({"num_inference_steps": 0}, "num_inference_steps", "num_inference_steps"),
    ({"num_inference_steps": 51}, "num_inference_steps", "between 1 and 50"),
    ({"guidance_scale": -1}, "guidance_scale", "guidance_scale"),
    ({"guidance_scale": 21}, "guidance_scale", "between 0 and 20"),
])
def test_bad_input_is_400_envelope(http, fields, param, needle):
    body = {"model": TINY_ID, "prompt": "x", **fields}
    body = {k: v for k, v in body.items() if v is not None}
    resp = http.post("/v1/images/generations", json=body)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert needle in error["message"]


def test_unknown_model_is_404(http):
    resp = http.post("/v1/images/generations", json={"model": "no-such-model", "prompt": "x"})
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "model_not_found"


def test_pipeline_model_validates_direct_triton_calls(triton):
    """Callers that skip the adapter get the same ClientError, carried in Triton's error message."""
    import tritonclient.grpc as grpcclient  # noqa: PLC0415
    from tritonclient.utils import InferenceServerException  # noqa: PLC0415

    from runtime.errors import ClientError  # noqa: PLC0415

    client = grpcclient.InferenceServerClient(triton.grpc_url)
    inputs = []
    for name, value, dtype in (("PROMPT", np.array([[b"x"]], np.object_), "BYTES"),
                               ("WIDTH", np.array([[100]], np.int32), "INT32")):
        item = grpcclient.InferInput(name, list(value.shape), dtype)
        item.set_data_from_numpy(value)
        inputs.append(item)
    with pytest.raises(InferenceServerException) as info:
        client.infer(TINY_ID, inputs)
    error = ClientError.from_wire(info.value.message())
    assert error is not None and error.param == "size"
    client.close()
