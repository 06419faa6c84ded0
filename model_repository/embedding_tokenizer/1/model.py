"""Triton shell of the tokenizer step: parse tensors -> runtime.embeddings.tokenization -> tensors."""
import json
from pathlib import Path

import triton_python_backend_utils as pb_utils

from runtime import shutdown
from runtime.contract import model_parameters
from runtime.embeddings.params import TokenizerParams
from runtime.embeddings.tokenization import EmbeddingTokenizer, tokenize_request
from runtime.triton_shell import input_array, input_scalar, input_strings, to_triton_error


class TritonPythonModel:
    def initialize(self, args):
        params = TokenizerParams.from_parameters(model_parameters(json.loads(args["model_config"])))
        path = Path(args["model_repository"]) / args["model_version"] / "tokenizer"
        self.tokenizer = EmbeddingTokenizer(path, params.max_input_tokens)
        shutdown.skip_interpreter_teardown()  # a prompt Triton stop (runtime/shutdown.py)

    def execute(self, requests):
        return [self._respond(request) for request in requests]

    def _respond(self, request):
        try:
            batch = tokenize_request(self.tokenizer, input_strings(pb_utils, request, "TEXT") or [],
                                     input_array(pb_utils, request, "TOKEN_IDS"),
                                     bool(input_scalar(pb_utils, request, "TRUNCATE", False)))
        except Exception as exc:  # noqa: BLE001  (every failure becomes this request's error response)
            return pb_utils.InferenceResponse(error=to_triton_error(pb_utils, exc))
        return pb_utils.InferenceResponse([pb_utils.Tensor("INPUT_IDS", batch.input_ids),
                                           pb_utils.Tensor("ATTENTION_MASK", batch.attention_mask),
                                           pb_utils.Tensor("TOKEN_COUNTS", batch.token_counts)])
