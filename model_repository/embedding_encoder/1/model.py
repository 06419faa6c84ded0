"""Triton shell of the encoder step: the dynamic batcher's requests -> one length-sorted engine pass -> split."""
import json
from pathlib import Path

import triton_python_backend_utils as pb_utils

from runtime import shutdown
from runtime.contract import model_parameters
from runtime.embeddings.batching import TokenBlock, encode_blocks
from runtime.embeddings.params import EncoderParams
from runtime.embeddings.session import OrtEncoderSession
from runtime.target import EngineTarget, instance_device_id
from runtime.triton_shell import input_array, to_triton_error


class TritonPythonModel:
    def initialize(self, args):
        parameters = model_parameters(json.loads(args["model_config"]))
        self.params = EncoderParams.from_parameters(parameters)
        engine = Path(args["model_repository"]) / args["model_version"] / self.params.engine_file
        self.session = OrtEncoderSession(engine, self.params.ort, EngineTarget.from_parameters(parameters),
                                         instance_device_id(args))
        shutdown.skip_interpreter_teardown()  # a prompt Triton stop (runtime/shutdown.py)

    def execute(self, requests):
        blocks = [TokenBlock(input_array(pb_utils, r, "INPUT_IDS"), input_array(pb_utils, r, "ATTENTION_MASK"))
                  for r in requests]
        try:
            vectors = encode_blocks(blocks, self.session, self.params.pooling, self.params.max_batch_tokens,
                                    self.params.length_tiers)
        except Exception as exc:  # noqa: BLE001  (an engine failure fails the whole merged batch)
            error = to_triton_error(pb_utils, exc)
            return [pb_utils.InferenceResponse(error=error) for _ in requests]
        return [pb_utils.InferenceResponse([pb_utils.Tensor("EMBEDDINGS", v)]) for v in vectors]
