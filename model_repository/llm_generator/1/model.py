"""Triton shell of the LLM generator: requests in, the scheduler's background loop streams the responses.

execute() only parses and enqueues (so new requests join the running batch between decode steps); the
scheduler thread sends every response through the request's response sender. Two interfaces
(docs/llm_model_interface.md): our `request`/`response` JSON, and the vLLM backend's tensors (text_input, ...).
"""
import json

import numpy as np
import triton_python_backend_utils as pb_utils

from runtime import shutdown
from runtime.errors import ClientError
from runtime.llm.generator import Generator
from runtime.llm.protocol import GeneratorConfig
from runtime.llm.vllm_interface import INPUTS as VLLM_INPUTS
from runtime.llm.vllm_interface import VllmRequest, VllmResponses
from runtime.target import EngineTarget, instance_device_id
from runtime.triton_shell import input_scalar, model_parameters, to_triton_error


class TritonSink:
    """ResponseSink over a decoupled response sender."""

    def __init__(self, sender):
        self.sender = sender

    def send(self, payload: str, final: bool) -> None:
        out = pb_utils.Tensor("response", np.array([payload.encode("utf-8")], dtype=np.object_))
        flags = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL if final else 0
        self.sender.send(pb_utils.InferenceResponse(output_tensors=[out]), flags=flags)

    def fail(self, error: BaseException) -> None:
        self.sender.send(pb_utils.InferenceResponse(error=to_triton_error(pb_utils, error)),
                         flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)

    def cancelled(self) -> bool:
        return self.sender.is_cancelled()

    def close(self) -> None:
        try:  # Triton keeps a request in flight until its final flag, cancelled or not
            self.sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        except Exception:  # noqa: BLE001  (already closed on Triton's side)
            pass


class VllmSink(TritonSink):
    """ResponseSink that answers in the vLLM backend's output tensors."""

    def __init__(self, sender, responses: VllmResponses):
        super().__init__(sender)
        self.responses = responses

    def send(self, payload: str, final: bool) -> None:
        tensors = self.responses.tensors(payload, final)
        if tensors is not None:
            out = [pb_utils.Tensor(name, value) for name, value in tensors.items()]
            flags = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL if final else 0
            self.sender.send(pb_utils.InferenceResponse(output_tensors=out), flags=flags)


def job_input(request, sink: TritonSink) -> tuple[str, TritonSink]:
    """(our contract's request JSON, the sink to answer in), from `request` or from the vLLM backend's inputs."""
    if pb_utils.get_input_tensor_by_name(request, "text_input") is not None:
        vllm = VllmRequest.from_inputs({name: input_scalar(pb_utils, request, name) for name in VLLM_INPUTS},
                                       request.parameters())
        return vllm.request_json, VllmSink(sink.sender, VllmResponses(vllm))
    text = input_scalar(pb_utils, request, "request")
    if text is None:
        raise ClientError("send `request` (JSON) or `text_input` (the vLLM backend's interface)", "request")
    return text, sink


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        version_dir = f"{args['model_repository']}/{args['model_version']}"
        parameters = model_parameters(config)
        self.generator = Generator(version_dir, GeneratorConfig.from_parameters(parameters),
                                   target=EngineTarget.from_parameters(parameters), device_id=instance_device_id(args))
        self.generator.start()
        # Triton unloads without waiting for our background generations, then waits for their responses before
        # it calls finalize: end them on SIGTERM instead (runtime/shutdown.py).
        shutdown.on_termination(self.generator.stop)

    def execute(self, requests):
        for request in requests:
            sink = TritonSink(request.get_response_sender())
            try:
                request_json, sink = job_input(request, sink)
                self.generator.submit(request_json, sink)
            except Exception as exc:  # noqa: BLE001  (ClientError -> 400; anything else -> 500 with a traceback)
                sink.fail(exc)
        return None

    def finalize(self):
        self.generator.stop(timeout=2.0)
        shutdown.exit_process()  # Triton has its answer; a send still blocked on the stopping server cannot hold us
