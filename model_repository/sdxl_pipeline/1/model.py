"""Triton shell of the SDXL pipeline: parse -> runtime.sdxl pipeline -> PNG bytes.

The dynamic batcher hands over the requests queued while the previous call ran; those that share size, steps
and guidance are denoised together as one UNet batch (up to max_batch_images), and up to parallel_batches such
batches run at once on threads (the engines release the GIL).
"""
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import triton_python_backend_utils as pb_utils

from runtime.sdxl.batching import plan_batches
from runtime.sdxl.config import ImageModelConfig
from runtime.sdxl.engines import ort_factory
from runtime.sdxl.pipeline import SdxlPipeline, to_png
from runtime.sdxl.triton_io import images_response, parse_request
from runtime.triton_shell import model_parameters, to_triton_error


class TritonPythonModel:
    def initialize(self, args):
        self.config = ImageModelConfig.from_parameters(model_parameters(json.loads(args["model_config"])))
        version_dir = Path(args["model_repository"]) / args["model_version"]
        self.pipeline = SdxlPipeline.from_dir(version_dir, ort_factory(self.config.ort_threads),
                                              self.config.force_zeros_for_empty_prompt)
        self.pool = ThreadPoolExecutor(self.config.parallel_batches)

    def execute(self, requests):
        responses = [None] * len(requests)
        parsed = {}
        for i, request in enumerate(requests):
            try:
                parsed[i] = parse_request(pb_utils, request, self.config)
            except Exception as exc:  # noqa: BLE001  (a bad request fails alone)
                responses[i] = _error(exc)
        batches = plan_batches(parsed, self.config.max_batch_images)
        for batch, results in zip(batches, self.pool.map(self._run, [[parsed[i] for i in b] for b in batches])):
            for i, result in zip(batch, results):
                responses[i] = result
        return responses

    def _run(self, reqs):
        """One batch -> one response per request (an engine failure fails the whole batch)."""
        try:
            images = self.pipeline.generate_batch(reqs)
            return [images_response(pb_utils, [to_png(im) for im in request_images]) for request_images in images]
        except Exception as exc:  # noqa: BLE001
            return [_error(exc)] * len(reqs)

    def finalize(self):
        self.pool.shutdown()


def _error(exc):
    return pb_utils.InferenceResponse(error=to_triton_error(pb_utils, exc))
