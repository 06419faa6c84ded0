"""Error vocabulary: ClientError's wire form survives Triton's prefixes; Triton errors map to statuses."""
from tritonclient.utils import InferenceServerException

from adapter.triton_client import to_openai_error
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
