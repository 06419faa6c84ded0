"""runtime.sdxl: the in-process pipeline equals diffusers for a seed; config validation; the Triton I/O shell."""
from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionXLPipeline
from PIL import Image

from runtime.errors import ClientError
from runtime.sdxl.batching import plan_batches
from runtime.sdxl.config import GenerationRequest, ImageModelConfig
from runtime.sdxl.engines import ort_factory
from runtime.sdxl.pipeline import SdxlPipeline
from runtime.sdxl.triton_io import images_response, parse_request
from tests.unit.sdxl_build import tiny_build

TOLERANCE = 2  # uint8 levels
CONFIG = ImageModelConfig(sizes=((64, 64), (128, 64)), default_size=(64, 64), default_steps=3, default_guidance=5.0,
                          max_steps=50, max_guidance=20.0)
REQ = GenerationRequest(prompt="a red fox", n=1, width=64, height=64, steps=3, guidance=5.0, seed=11)


@pytest.fixture(scope="module")
def built() -> tuple[Path, Path]:
    return tiny_build()


@pytest.fixture(scope="module")
def pipeline(built) -> SdxlPipeline:
    return SdxlPipeline.from_dir(built[1], ort_factory())


@pytest.fixture(scope="module")
def reference(built) -> StableDiffusionXLPipeline:
    pipe = StableDiffusionXLPipeline.from_pretrained(built[0])
    pipe.set_progress_bar_config(disable=True)
    return pipe


def diffusers_images(pipe, req: GenerationRequest) -> list[Image.Image]:
    generators = [torch.Generator().manual_seed(req.seed + i) for i in range(req.n)]
    return pipe(req.prompt, negative_prompt=req.negative_prompt, num_images_per_prompt=req.n, width=req.width,
                height=req.height, num_inference_steps=req.steps, guidance_scale=req.guidance,
                generator=generators).images


def max_diff(a: Image.Image, b: Image.Image) -> int:
    return int(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).max())


@pytest.mark.parametrize("change", [
    {},  # CFG with zeroed negative embeddings (force_zeros_for_empty_prompt)
    {"negative_prompt": "", "n": 2},  # CFG with an encoded empty negative prompt
    {"negative_prompt": "blurry", "width": 128, "n": 2},
    {"guidance": 1.0},  # diffusers turns CFG off at guidance <= 1
])
def test_pipeline_equals_diffusers(pipeline, reference, change):
    req = replace(REQ, **change)
    ours, theirs = pipeline.generate(req), diffusers_images(reference, req)
    assert [im.size for im in ours] == [(req.width, req.height)] * req.n
    assert all(max_diff(a, b) <= TOLERANCE for a, b in zip(ours, theirs))


def test_image_i_uses_seed_plus_i(pipeline):
    batch = pipeline.generate(replace(REQ, n=3))
    assert len({im.tobytes() for im in batch}) == 3
    assert max_diff(batch[2], pipeline.generate(replace(REQ, seed=REQ.seed + 2))[0]) <= TOLERANCE


def test_png_bytes_decode_to_requested_size(pipeline):
    png = pipeline.generate_png(replace(REQ, width=128))[0]
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (128, 64) and image.mode == "RGB"


def test_time_ids_are_height_first(pipeline):
    cond = pipeline.condition(replace(REQ, width=128, n=2), cfg=True)
    assert cond.hidden.shape[0] == cond.pooled.shape[0] == cond.time_ids.shape[0] == 4
    np.testing.assert_array_equal(cond.time_ids[0], [64, 128, 0, 0, 64, 128])
    assert not cond.hidden[:2].any() and cond.hidden[2:].any()  # zeros for the absent negative prompt


def test_config_round_trips_through_parameters():
    assert ImageModelConfig.from_parameters(CONFIG.to_parameters()) == CONFIG


@pytest.mark.parametrize("change, param", [
    ({"prompt": " "}, "prompt"), ({"n": 0}, "n"), ({"n": 11}, "n"), ({"width": 72}, "size"),
    ({"steps": 0}, "num_inference_steps"), ({"steps": 51}, "num_inference_steps"),
    ({"guidance": -0.5}, "guidance_scale"), ({"guidance": 20.5}, "guidance_scale"), ({"seed": -1}, "seed"),
])
def test_validation_names_the_parameter(change, param):
    with pytest.raises(ClientError) as info:
        CONFIG.validate(replace(REQ, **change))
    assert info.value.param == param


def test_unsupported_size_lists_supported_sizes():
    with pytest.raises(ClientError, match="Supported sizes: 64x64, 128x64"):
        CONFIG.check_size(256, 256)


class FakeTensor:
    def __init__(self, name: str, array: np.ndarray):
        self.name, self.array = name, array

    def as_numpy(self) -> np.ndarray:
        return self.array


class FakePbUtils:
    Tensor = FakeTensor

    class InferenceResponse:
        def __init__(self, output_tensors):
            self.output_tensors = output_tensors

    @staticmethod
    def get_input_tensor_by_name(request: dict, name: str):
        return FakeTensor(name, request[name]) if name in request else None


def test_triton_request_takes_model_defaults():
    req = parse_request(FakePbUtils, {"PROMPT": np.array([b"a fox"], np.object_)}, CONFIG)
    assert (req.prompt, req.n, req.width, req.height, req.steps, req.guidance) == ("a fox", 1, 64, 64, 3, 5.0)
    assert req.negative_prompt is None and 0 <= req.seed < 2**32


def test_triton_request_is_validated():
    request = {"PROMPT": np.array([b"a fox"], np.object_), "WIDTH": np.array([128], np.int32),
               "HEIGHT": np.array([128], np.int32)}
    with pytest.raises(ClientError, match="Unsupported size '128x128'"):
        parse_request(FakePbUtils, request, CONFIG)


def test_images_response_carries_png_bytes():
    response = images_response(FakePbUtils, [b"\x89PNG-a", b"\x89PNG-b"])
    assert response.output_tensors[0].array.tolist() == [[b"\x89PNG-a", b"\x89PNG-b"]]  # [batch 1, n]


def test_plan_batches_groups_compatible_requests_up_to_max_images():
    reqs = {0: REQ, 1: replace(REQ, width=128), 2: replace(REQ, n=3), 3: replace(REQ, n=4), 4: replace(REQ, n=9),
            5: replace(REQ, width=128, prompt="other")}
    assert plan_batches(reqs, max_images=8) == [[0, 2, 3], [4], [1, 5]]
    assert plan_batches(reqs, max_images=1) == [[0], [2], [3], [4], [1], [5]]


def test_merged_requests_give_the_images_of_separate_runs(pipeline):
    reqs = [replace(REQ, seed=1, n=2), replace(REQ, seed=5, negative_prompt="dark"), replace(REQ, prompt="a boat")]
    merged = pipeline.generate_batch(reqs)
    assert [len(images) for images in merged] == [2, 1, 1]
    for req, images in zip(reqs, merged):
        assert all(max_diff(a, b) <= TOLERANCE for a, b in zip(images, pipeline.generate(req)))


def test_io_binding_engines_give_the_same_images(built, pipeline):
    """The GPU engines' code path (runtime/sdxl/device.py: tensors bound by address, per-shape persistent buffers
    for the CUDA-graph UNet) on CPU tensors and the CPU provider: the same images as the plain sessions."""
    from runtime.sdxl.device import TorchIoEngine  # noqa: PLC0415

    def factory(path):
        return TorchIoEngine(ort_factory()(path)._session, torch.device("cpu"), cuda_graph=path.stem == "unet")

    bound = SdxlPipeline.from_dir(built[1], factory)
    for req in (replace(REQ, n=2), replace(REQ, width=128)):  # two shapes: two persistent buffer sets
        assert all(max_diff(a, b) == 0 for a, b in zip(bound.generate(req), pipeline.generate(req)))
    assert len(bound.engines["unet"]._graphs) == 2
