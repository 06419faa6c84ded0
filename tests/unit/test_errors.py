"""Error vocabulary: ClientError's wire form survives Triton's prefixes; Triton errors map to statuses."""
import asyncio

import numpy as np
from grpclib.const import Status
from grpclib.exceptions import GRPCError, StreamTerminatedError
from tritonclient.utils import InferenceServerException

from adapter.errors import OpenAIError
from adapter.triton_client import TritonClient, stream_error, to_openai_error
from launcher.process import free_port
from runtime.errors import ClientError


def test_client_error_round_trips_inside_a_prefixed_triton_message():
    wire = ClientError("input is 600 tokens, limit is 512", "input", "context_length_exceeded").to_wire()
    parsed = ClientError.from_wire(f"in ensemble 'e5', Failed to process the request(s): {wire}")
    assert (parsed.message, parsed.param, parsed.code) == ("input is 600 tokens, limit is 512", "input",
                                                           "context_length_exceeded")


def test_plain_messages_are_not_client_errors():
    assert ClientError.from_wire("Internal: ValueError: boom") is None
    assert ClientError.from_wire('{"client_error": not json') is None


def test_triton_errors_map_to_http_statuses():
    wire = ClientError("bad token id 99999", "input").to_wire()
    cases = [
        (InferenceServerException(msg=wire), 400, "invalid_request_error"),
        (InferenceServerException(msg="x", status="StatusCode.UNAVAILABLE"), 503, "service_unavailable"),
        (InferenceServerException(msg="failed to connect to all addresses"), 503, "service_unavailable"),
        (InferenceServerException(msg="bad shape", status="StatusCode.INVALID_ARGUMENT"), 400, "invalid_request_error"),
        (InferenceServerException(msg="boom", status="StatusCode.INTERNAL"), 500, "server_error"),
    ]
    for exc, status, kind in cases:
        err = to_openai_error(exc)
        assert (err.status, err.type) == (status, kind), exc


def test_failed_streams_map_to_http_statuses():
    cases = [
        (GRPCError(Status.UNAVAILABLE, "socket closed"), 503, "service_unavailable"),
        (GRPCError(Status.CANCELLED), 503, "service_unavailable"),
        (GRPCError(Status.INVALID_ARGUMENT, "bad shape"), 400, "invalid_request_error"),
        (GRPCError(Status.INTERNAL, "boom"), 500, "server_error"),
        (StreamTerminatedError("Connection lost"), 503, "service_unavailable"),
        (ConnectionRefusedError(111, "Connect call failed"), 503, "service_unavailable"),
    ]
    for exc, status, kind in cases:
        err = stream_error(exc)
        assert (err.status, err.type) == (status, kind), exc
    assert "socket closed" in stream_error(cases[0][0]).message
    assert stream_error(GRPCError(Status.CANCELLED)).message  # no message from the server: the status names it


def test_a_stream_with_no_server_is_503_at_once():
    async def stream() -> None:
        client = TritonClient(f"127.0.0.1:{free_port()}", 5.0)
        try:
            async for _ in client.stream("m", {"request": np.array([b"{}"], dtype=np.object_)}):
                pass
        finally:
            await client.close()

    try:
        asyncio.run(asyncio.wait_for(stream(), 5))
    except OpenAIError as err:
        assert (err.status, err.type) == (503, "service_unavailable")
        assert "unavailable" in err.message.lower()
    else:
        raise AssertionError("a stream to no server ended without an error")
