"""Glue between pb_utils and the pure core; the only runtime module that knows Triton's Python API.

pb_utils is passed in (it exists only inside the stub), so this module imports and tests without Triton.
"""
from __future__ import annotations

import traceback
from typing import Any

import numpy as np

from runtime.errors import ClientError


def to_triton_error(pb_utils: Any, exc: BaseException) -> Any:
    """ClientError -> INVALID_ARG with its wire form; anything else -> INTERNAL with a logged traceback."""
    if isinstance(exc, ClientError):
        return pb_utils.TritonError(exc.to_wire(), pb_utils.TritonError.INVALID_ARG)
    pb_utils.Logger.log_error("".join(traceback.format_exception(exc)))  # also outside an except block
    return pb_utils.TritonError(f"{type(exc).__name__}: {exc}")


def input_array(pb_utils: Any, request: Any, name: str) -> np.ndarray | None:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return None if tensor is None else tensor.as_numpy()


def input_strings(pb_utils: Any, request: Any, name: str) -> list[str] | None:
    arr = input_array(pb_utils, request, name)
    if arr is None:
        return None
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in arr.reshape(-1)]


def input_scalar(pb_utils: Any, request: Any, name: str, default: Any = None) -> Any:
    arr = input_array(pb_utils, request, name)
    if arr is None or arr.size == 0:
        return default
    value = arr.reshape(-1)[0]
    return value.decode("utf-8") if isinstance(value, bytes) else value.item()
