"""adapter.images.protocol: the request, its mapping to the pipeline request and to Triton inputs (no server)."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from adapter.errors import OpenAIError
from adapter.images.protocol import (ImageGenerationRequest, images_response, parse_size, to_generation_request,
                                     triton_inputs)
from runtime.sdxl.config import ImageModelConfig

CONFIG = ImageModelConfig(sizes=((64, 64), (128, 64)), default_size=(64, 64), default_steps=4, default_guidance=5.0,
                          max_steps=50, max_guidance=20.0)


def request(**fields) -> ImageGenerationRequest:
    return ImageGenerationRequest(**{"model": "tiny-sdxl", "prompt": "a fox", **fields})


@pytest.mark.parametrize("text, size", [
    ("1024x768", (1024, 768)), ("1024*768", (1024, 768)), ("64X64", (64, 64)), (" 64 x 128 ", (64, 128)),
    ("64", None), ("64x", None), ("x64", None), ("64x64x64", None), ("-64x64", None), ("64.0x64", None), ("", None),
])
def test_parse_size_accepts_both_spellings(text, size):
    assert parse_size(text) == size


def test_defaults_come_from_the_model_config():
    req = to_generation_request(request(), CONFIG)
    assert (req.width, req.height, req.steps, req.guidance, req.n) == (64, 64, 4, 5.0, 1)
    assert 0 <= req.seed < 2**32
    assert (to_generation_request(request(size="auto"), CONFIG).width, req.height) == (64, 64)


def test_explicit_fields_and_extensions_map_through():
    req = to_generation_request(request(size="128*64", n=3, seed=5, num_inference_steps=7, guidance_scale=0.0,
                                        negative_prompt="dark"), CONFIG)
    assert (req.width, req.height, req.n, req.seed, req.steps, req.guidance, req.negative_prompt) == (
        128, 64, 3, 5, 7, 0.0, "dark")
    inputs = triton_inputs(req)
    assert inputs["NEGATIVE_PROMPT"].tolist() == [["dark"]] and inputs["SEED"].dtype.name == "int64"
    assert all(array.shape == (1, 1) for array in inputs.values())
    assert "NEGATIVE_PROMPT" not in triton_inputs(to_generation_request(request(), CONFIG))


@pytest.mark.parametrize("fields, param, needle", [
    ({"size": "huge"}, "size", "Supported sizes: 64x64, 128x64"),
    ({"size": "256x256"}, "size", "Supported sizes: 64x64, 128x64"),
    ({"num_inference_steps": 51}, "num_inference_steps", "between 1 and 50"),
    ({"guidance_scale": 20.5}, "guidance_scale", "between 0 and 20"),
])
def test_model_limits_are_400(fields, param, needle):
    with pytest.raises(OpenAIError) as info:
        to_generation_request(request(**fields), CONFIG)
    assert info.value.status == 400 and info.value.param == param and needle in info.value.message


def test_url_response_format_is_refused_clearly():
    with pytest.raises(OpenAIError) as info:
        request(response_format="url").check_response_format()
    assert info.value.param == "response_format" and "only 'b64_json' is served" in info.value.message
    request(response_format="b64_json").check_response_format()
    request(response_format=None).check_response_format()


@pytest.mark.parametrize("fields", [
    {"prompt": ""}, {"prompt": "   "}, {"n": 0}, {"n": 11}, {"num_inference_steps": 0}, {"guidance_scale": -1},
    {"seed": -1}, {"response_format": "png"},
])
def test_type_level_rules_reject(fields):
    with pytest.raises(ValidationError):
        request(**fields)


def test_unknown_openai_fields_are_ignored():
    assert request(quality="hd", style="vivid").n == 1


def test_response_shape():
    body = images_response(["AAAA"])
    assert isinstance(body["created"], int)
    assert body["data"] == [{"b64_json": "AAAA", "url": None, "revised_prompt": None}]
