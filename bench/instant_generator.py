"""A Triton Python model that answers the LLM generator's contract at once: no tokenizer, no engine.

bench/ttft_floor.py serves it beside the real generator (same config.pbtxt, decoupled, `request`/`response` JSON;
runtime/llm/protocol.py) to measure what the serving stack alone costs a stream's first token: HTTP, the adapter,
gRPC, Triton and the Python-backend crossing. Each request gets two responses: its first token ("x"), then the
other max_tokens - 1 in one final response with finish_reason "length" (one burst of max_tokens responses would
keep the adapter busy reading them while it writes the first chunk, which no engine does).
"""
import json

import numpy as np
import triton_python_backend_utils as pb_utils

from runtime.llm.protocol import response_json


class TritonPythonModel:
    def initialize(self, args):
        pass

    def execute(self, requests):
        for request in requests:
            sender = request.get_response_sender()
            body = json.loads(pb_utils.get_input_tensor_by_name(request, "request").as_numpy().reshape(-1)[0])
            tokens = max(1, int(body.get("sampling", {}).get("max_tokens") or 1))
            if tokens > 1:
                _send(sender, {"index": 0, "text": "x", "finish_reason": None}, 1, final=False)
            _send(sender, {"index": 0, "text": "x" * (tokens - 1 or 1), "finish_reason": "length"}, tokens, final=True)
        return None


def _send(sender, choice: dict, completion_tokens: int, final: bool) -> None:
    payload = response_json([choice], 1, completion_tokens).encode()
    response = pb_utils.InferenceResponse([pb_utils.Tensor("response", np.array([payload], np.object_))])
    sender.send(response, flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL if final else 0)
