"""Triton shell of the LLM generator: requests in, the scheduler's background loop streams the responses.

execute() only parses and enqueues (so new requests join the running batch between decode steps); the
scheduler thread sends a stream's first response, a send thread the rest (runtime/llm/send_thread.py).
Two interfaces (docs/llm_model_interface.md): our `request`/`response` JSON, and the vLLM backend's tensors (text_input, ...).
"""
import json
import threading

import numpy as np
import triton_python_backend_utils as pb_utils

from runtime import shutdown
from runtime.contract import model_parameters
from runtime.errors import ClientError
from runtime.llm.families import family_of_parameters
from runtime.llm.generator import Generator
from runtime.llm.protocol import GeneratorConfig
from runtime.llm.send_thread import SendThread, ThreadedSink
from runtime.llm.vllm_interface import INPUTS as VLLM_INPUTS
from runtime.llm.vllm_interface import VllmRequest, VllmResponses
from runtime.memory import bound_allocator
from runtime.target import EngineTarget, instance_device_id
from runtime.triton_shell import input_scalar, to_triton_error


FIRST_STEP_WAIT_S = 0.05  # execute() waits this long at most for an idle engine's first step (Generator.submit)
METRICS_PERIOD_S = 1.0  # how often the prefix-cache counters reach Triton's /metrics


class PrefixCacheMetrics:
    """The scheduler's prefix-reuse counters as Triton custom metrics (Triton's metrics port), copied by a
    background thread so that the engine loop never calls into the metrics API."""

    FIELDS = {"queries": "prompts looked up in the prefix cache", "hits": "prompts that reused a cached prefix",
              "reused_tokens": "prompt tokens taken from the cache instead of prefilled",
              "prompt_tokens": "prompt tokens of the prompts looked up"}

    def __init__(self, stats, model: str):
        self.stats, self.seen = stats, {name: 0 for name in self.FIELDS}
        # a Metric is usable only while its MetricFamily lives: keep both
        self.families = {name: pb_utils.MetricFamily(name=f"llm_prefix_cache_{name}_total", description=text,
                                                     kind=pb_utils.MetricFamily.COUNTER)
                         for name, text in self.FIELDS.items()}
        self.metrics = {name: family.Metric(labels={"model": model}) for name, family in self.families.items()}
        self.stop = threading.Event()
        threading.Thread(target=self._run, name="prefix-cache-metrics", daemon=True).start()

    def _run(self) -> None:
        while not self.stop.wait(METRICS_PERIOD_S):
            for name, metric in self.metrics.items():
                value = getattr(self.stats, name)
                metric.increment(value - self.seen[name])
                self.seen[name] = value


class TritonSink(ThreadedSink):
    """ResponseSink over a decoupled response sender (sends after the first on the model's send thread)."""

    def __init__(self, sender, sends: SendThread):
        super().__init__(sends)
        self.sender = sender

    def deliver(self, payload: str, final: bool) -> None:
        self._send_tensors({"response": np.array([payload.encode("utf-8")], dtype=np.object_)}, final)

    def _send_tensors(self, tensors: dict, final: bool) -> None:
        out = [pb_utils.Tensor(name, value) for name, value in tensors.items()]
        flags = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL if final else 0
        self.sender.send(pb_utils.InferenceResponse(output_tensors=out), flags=flags)

    def deliver_error(self, error: BaseException) -> None:
        self.sender.send(pb_utils.InferenceResponse(error=to_triton_error(pb_utils, error)),
                         flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)

    def deliver_close(self) -> None:  # Triton keeps a request in flight until its final flag, cancelled or not
        self.sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)

    def is_cancelled(self) -> bool:
        return self.sender.is_cancelled()


class VllmSink(TritonSink):
    """ResponseSink that answers in the vLLM backend's output tensors."""

    def __init__(self, sender, sends: SendThread, responses: VllmResponses):
        super().__init__(sender, sends)
        self.responses = responses

    def deliver(self, payload: str, final: bool) -> None:
        tensors = self.responses.tensors(payload, final)  # None: nothing to send yet (not streaming)
        if tensors is not None:
            self._send_tensors(tensors, final)


def job_input(request, sink: TritonSink) -> tuple[str, TritonSink]:
    """(our contract's request JSON, the sink to answer in), from `request` or from the vLLM backend's inputs."""
    if pb_utils.get_input_tensor_by_name(request, "text_input") is not None:
        vllm = VllmRequest.from_inputs({name: input_scalar(pb_utils, request, name) for name in VLLM_INPUTS},
                                       request.parameters())
        return vllm.request_json, VllmSink(sink.sender, sink.sends, VllmResponses(vllm))
    text = input_scalar(pb_utils, request, "request")
    if text is None:
        raise ClientError("send `request` (JSON) or `text_input` (the vLLM backend's interface)", "request")
    return text, sink


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        version_dir = f"{args['model_repository']}/{args['model_version']}"
        parameters = model_parameters(config)
        bound_allocator()  # this stub process is the engine's: a prompt's activations go back when freed
        self.generator = Generator(version_dir, GeneratorConfig.from_parameters(parameters),
                                   target=EngineTarget.from_parameters(parameters), device_id=instance_device_id(args),
                                   family=family_of_parameters(parameters))
        self.generator.start()
        stats = self.generator.prefix_cache_stats()
        self.metrics = PrefixCacheMetrics(stats, config["name"]) if stats is not None else None
        # Triton unloads without waiting for our background generations, then waits for their responses before
        # it calls finalize: end them on SIGTERM instead (runtime/shutdown.py).
        shutdown.on_termination(self.generator.stop)
        self.sends = SendThread()  # every response after a stream's first (runtime/llm/send_thread.py)

    def execute(self, requests):
        for request in requests:
            sink = TritonSink(request.get_response_sender(), self.sends)
            try:
                request_json, sink = job_input(request, sink)
                self.generator.submit(request_json, sink, wait_first_s=FIRST_STEP_WAIT_S)
            except Exception as exc:  # noqa: BLE001  (ClientError -> 400; anything else -> 500 with a traceback)
                sink.fail(exc)
        return None

    def finalize(self):
        if self.metrics is not None:
            self.metrics.stop.set()
        self.generator.stop(timeout=2.0)
        self.sends.close(timeout=2.0)  # the generations' last words (errors at shutdown) go out first
        shutdown.exit_process()  # Triton has its answer; a send still blocked on the stopping server cannot hold us
