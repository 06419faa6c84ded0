"""One shared async gRPC client to Triton, with numpy in/out and Triton errors mapped to OpenAIError.

Streams (the LLM generator's decoupled responses) go over grpclib, gRPC on the adapter's own event loop; the
unary calls over tritonclient's grpc.aio client. grpc.aio hands every event through gRPC's C-core threads and a
poller thread to the loop, a thread wake-up or two per response, which a stream's first response waits for and
which costs client CPU on every token; grpclib runs on the loop itself.
"""
from __future__ import annotations

import asyncio
from typing import AsyncIterator

import grpc
import numpy as np
import tritonclient.grpc.aio as grpcclient
from grpclib.client import Channel, Stream
from grpclib.const import Cardinality
from grpclib.exceptions import GRPCError, StreamTerminatedError
from tritonclient.grpc import InferResult, service_pb2
from tritonclient.grpc._utils import _get_inference_request
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from adapter.errors import OpenAIError, internal_error, invalid_request, service_unavailable
from runtime.errors import ClientError

Tensors = dict[str, np.ndarray]

# tritonclient's default channel options plus a short reconnect backoff: after a Triton restart the shared
# channel reconnects within ~2 s instead of gRPC's default backoff of up to 120 s.
_KEEPALIVE = grpcclient.KeepAliveOptions()
_CHANNEL_ARGS = [
    ("grpc.max_send_message_length", grpcclient.MAX_GRPC_MESSAGE_SIZE),
    ("grpc.max_receive_message_length", grpcclient.MAX_GRPC_MESSAGE_SIZE),
    ("grpc.keepalive_time_ms", _KEEPALIVE.keepalive_time_ms),
    ("grpc.keepalive_timeout_ms", _KEEPALIVE.keepalive_timeout_ms),
    ("grpc.keepalive_permit_without_calls", _KEEPALIVE.keepalive_permit_without_calls),
    ("grpc.http2.max_pings_without_data", _KEEPALIVE.http2_max_pings_without_data),
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
    # No retry policy is configured, and a failed call is answered 503 anyway: the retry filter would only add
    # client CPU and latency to every call.
    ("grpc.enable_retries", 0),
]

_STREAM_INFER = "/inference.GRPCInferenceService/ModelStreamInfer"

_STREAM_END_S = 5.0  # how long a stream may take to end after its final response before we cancel it
_UNAVAILABLE = {"StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.CANCELLED"}


def to_openai_error(exc: InferenceServerException) -> OpenAIError:
    message = exc.message() or str(exc)
    client = ClientError.from_wire(message)
    if client is not None:
        return invalid_request(client.message, client.param, client.code)
    status = exc.status() or ""
    if status in _UNAVAILABLE or "failed to connect" in message.lower():
        return service_unavailable(f"Inference server unavailable: {message}")
    if status == "StatusCode.INVALID_ARGUMENT":
        return invalid_request(message)
    return internal_error(f"Inference failed: {message}")


def stream_error(exc: GRPCError | StreamTerminatedError | OSError) -> OpenAIError:
    """A failed stream (not an error response inside it): a gRPC status, a lost connection, no connection."""
    if isinstance(exc, GRPCError):
        message, status = exc.message or exc.status.name, exc.status.name
    else:  # the connection was lost or refused: what gRPC calls UNAVAILABLE
        message, status = str(exc) or type(exc).__name__, "UNAVAILABLE"
    return to_openai_error(InferenceServerException(msg=message, status=f"StatusCode.{status}"))


def _host_port(url: str) -> tuple[str, int]:
    host, _, port = url.rpartition(":")
    return host.strip("[]"), int(port)


class _Abandoned(Exception):
    """Handed to a stream's exit when we leave it early: grpclib then resets it, which cancels the request."""


def infer_inputs(inputs: Tensors) -> list[grpcclient.InferInput]:
    built = []
    for name, array in inputs.items():
        if array.dtype.kind in "OUS":
            array = np.asarray([v.encode() if isinstance(v, str) else v for v in array.reshape(-1)],
                               dtype=np.object_).reshape(array.shape)
        item = grpcclient.InferInput(name, list(array.shape), np_to_triton_dtype(array.dtype))
        item.set_data_from_numpy(array)
        built.append(item)
    return built


def _outputs(result: InferResult, names: list[str] | None) -> Tensors:
    response = result.get_response()
    names = names or [o.name for o in response.outputs]
    arrays = {n: result.as_numpy(n) for n in names}  # as_numpy deserializes: call it once per output
    return {n: a for n, a in arrays.items() if a is not None}


class TritonClient:
    def __init__(self, url: str, timeout_s: float):
        self.url, self.timeout_s = url, timeout_s
        self._client = grpcclient.InferenceServerClient(url, channel_args=_CHANNEL_ARGS)
        self._channel: Channel | None = None  # the streams' connection, made on the loop that uses it
        self._finishing: set[asyncio.Task] = set()  # streams ending after their final response (_let_finish)

    @property
    def finishing_streams(self) -> int:
        """Streams past their final response, still ending on their own (_let_finish)."""
        return len(self._finishing)

    def connection_streams(self) -> tuple[int, int]:
        """(streams open on the connection, calls the connection saw fail: resets among them), (0, 0) before the
        first stream. Read by the tests that check streams end cleanly."""
        if self._channel is None or self._channel._protocol is None:  # grpclib exposes no public counters
            return 0, 0
        return len(self._channel._protocol.processor.streams), self._channel._calls_failed

    async def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
        await self._client.close()

    async def is_ready(self) -> bool:
        try:
            return await self._client.is_server_ready(client_timeout=2.0)
        except (InferenceServerException, grpc.RpcError):
            return False

    async def repository_index(self) -> list[dict]:
        try:
            index = await self._client.get_model_repository_index(as_json=True, client_timeout=5.0)
        except InferenceServerException as exc:
            raise to_openai_error(exc) from exc
        return index.get("models", [])

    async def model_config(self, name: str) -> dict:
        try:
            return (await self._client.get_model_config(name, as_json=True, client_timeout=5.0))["config"]
        except InferenceServerException as exc:
            raise to_openai_error(exc) from exc

    async def infer(self, model: str, inputs: Tensors, outputs: list[str] | None = None,
                    request_id: str = "", timeout_s: float | None = None) -> Tensors:
        requested = [grpcclient.InferRequestedOutput(n) for n in outputs] if outputs else None
        try:
            result = await self._client.infer(model, infer_inputs(inputs), outputs=requested, request_id=request_id,
                                              client_timeout=timeout_s or self.timeout_s)
        except InferenceServerException as exc:
            raise to_openai_error(exc) from exc
        return _outputs(result, outputs)

    async def stream(self, model: str, inputs: Tensors, request_id: str = "") -> AsyncIterator[Tensors]:
        """Responses of a decoupled model for one request; leaving the loop early cancels it in Triton."""
        request = _get_inference_request(model_name=model, inputs=infer_inputs(inputs), model_version="",
                                         request_id=request_id, outputs=None, sequence_id=0, sequence_start=False,
                                         sequence_end=False, priority=0, timeout=None, parameters=None)
        # The empty final response tells us the model is done (not exposed by the aio client's dict API).
        request.parameters["triton_enable_empty_final_response"].bool_param = True

        if self._channel is None:
            self._channel = Channel(*_host_port(self.url))
        call = self._channel.request(_STREAM_INFER, Cardinality.STREAM_STREAM, service_pb2.ModelInferRequest,
                                     service_pb2.ModelStreamInferResponse)
        await call.__aenter__()  # left by hand below: at the final response the rest of the call goes on alone
        ended = False
        try:
            await call.send_message(request, end=True)
            while (response := await call.recv_message()) is not None:
                # An error the model reports (a 400 it finds, e.g. a bad schema) usually is its final response:
                # that stream then ends like any other, never by a reset (see _let_finish).
                ended = response.infer_response.parameters["triton_final_response"].bool_param
                if response.error_message:
                    raise to_openai_error(InferenceServerException(msg=response.error_message))
                if response.infer_response.outputs:
                    yield _outputs(InferResult(response.infer_response), None)
                if ended:
                    break
            else:  # the stream ended without a final response: its status says why (an error raises)
                await call.recv_trailing_metadata()
        except (GRPCError, StreamTerminatedError, OSError) as exc:
            raise stream_error(exc) from exc
        finally:
            if ended:
                self._let_finish(call)
            else:  # left early (the client went away, an error): reset the stream, which cancels it in Triton
                await call.__aexit__(_Abandoned, _Abandoned(), None)

    def _let_finish(self, call: Stream) -> None:
        """After the final response Triton ends the stream itself (our side has half-closed). Cancelling it
        then races Triton 2.51's stream teardown, which can leak the stream's state and with it a reference to
        the model: the model never unloads and the server's stop waits out its whole timeout. So let the call
        end on its own, in the background (the caller already has every response); reset only a laggard."""
        async def finish() -> None:
            try:
                await asyncio.wait_for(call.__aexit__(None, None, None), _STREAM_END_S)
            except (asyncio.TimeoutError, GRPCError, StreamTerminatedError, OSError):
                pass  # timed out: the exit was cancelled and reset the stream; the others: the call is over
        task = asyncio.get_running_loop().create_task(finish())
        self._finishing.add(task)  # a strong reference until done (the loop keeps only weak ones)
        task.add_done_callback(self._finishing.discard)
