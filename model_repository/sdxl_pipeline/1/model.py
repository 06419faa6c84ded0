"""Triton shell of the SDXL pipeline: parse -> runtime.sdxl pipeline -> PNG bytes.

The dynamic batcher hands over the requests queued while the previous call ran; those that share size, steps
and guidance are denoised together as one UNet batch (up to max_batch_images). Parallelism across batches comes
from Triton model instances (instance_group count): separate processes, so no GIL between them.
"""
import json
from pathlib import Path

import triton_python_backend_utils as pb_utils

from runtime import shutdown
from runtime.contract import model_parameters
from runtime.sdxl.batching import plan_batches
from runtime.sdxl.config import ImageModelConfig
from runtime.sdxl.engines import engine_factory, set_torch_threads
from runtime.sdxl.pipeline import SdxlPipeline, to_png
from runtime.sdxl.triton_io import images_response, parse_request
from runtime.target import EngineTarget, instance_device_id
from runtime.triton_shell import to_triton_error


class TritonPythonModel:
    def initialize(self, args):
        parameters = model_parameters(json.loads(args["model_config"]))
        self.config = ImageModelConfig.from_parameters(parameters)
        set_torch_threads(self.config.torch_threads)
        version_dir = Path(args["model_repository"]) / args["model_version"]
        factory, device = engine_factory(EngineTarget.from_parameters(parameters), instance_device_id(args),
                                         self.config.ort_threads)
        self.pipeline = SdxlPipeline.from_dir(version_dir, factory, self.config.force_zeros_for_empty_prompt, device)
        shutdown.skip_interpreter_teardown()  # a prompt Triton stop (runtime/shutdown.py)

    def execute(self, requests):
        responses = [None] * len(requests)
        parsed = {}
        for i, request in enumerate(requests):
            try:
                parsed[i] = parse_request(pb_utils, request, self.config)
            except Exception as exc:  # noqa: BLE001  (a bad request fails alone)
                responses[i] = _error(exc)
        for batch in plan_batches(parsed, self.config.max_batch_images):
            for i, response in zip(batch, self._run([parsed[i] for i in batch])):
                responses[i] = response
        return responses

    def _run(self, reqs):
        """One batch -> one response per request (an engine failure fails the whole batch)."""
        try:
            images = self.pipeline.generate_batch(reqs)
            return [images_response(pb_utils, [to_png(im) for im in request_images]) for request_images in images]
        except Exception as exc:  # noqa: BLE001
            return [_error(exc)] * len(reqs)


def _error(exc):
    return pb_utils.InferenceResponse(error=to_triton_error(pb_utils, exc))
