"""torch.onnx.export (the TorchScript exporter) with the weights streamed to ONNX external data, never held twice.

Left to itself the exporter builds the whole ModelProto in memory and serializes it: below 2 GB that is two to
three more copies of the weights on top of the module's own (measured: 4.4x the weights at peak). Here the graph
is traced without parameters (`export_params=False`: each parameter stays a graph input named by its state_dict
key), then every parameter is written from the module's own tensor memory into `<model>.onnx.data` (64-byte
aligned offsets) and turned into an external initializer. Peak: the module plus one weight-free graph.
Constant folding is left to ONNX Runtime at load time: torch's would materialize folded copies (transposed
weights) of most of the model.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx.external_data_helper import load_external_data_for_model, uses_external_data

from builders.progress import BuildError

ALIGN = 64
PROTOBUF_LIMIT = 2 * 1024**3 - 64 * 1024**2  # stay clear of protobuf's 2 GiB message limit


@dataclass(frozen=True)
class Exported:
    path: Path
    weights_bytes: int  # initializers, in the export dtype
    max_diff: float = float("nan")  # max |ONNX Runtime - PyTorch| on the check input, when checked


def data_path(path: Path) -> Path:
    return path.with_name(path.name + ".data")


def export_streaming(module, args: tuple, path: Path, **export_kwargs) -> int:
    """Export `module` to `path` + `path.data`; returns the bytes of weights written."""
    import torch  # noqa: PLC0415

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings on shapes the graph keeps dynamic
        torch.onnx.export(module, args, str(path), export_params=False, do_constant_folding=False, dynamo=False,
                          **export_kwargs)
    tensors = module.state_dict(keep_vars=False)  # references to the module's tensors, no copies
    model = onnx.load(str(path))  # the graph alone: no weights in it yet
    written = attach_external_weights(model, tensors, data_path(path))
    onnx.save_model(model, str(path))
    return written


def attach_external_weights(model: onnx.ModelProto, tensors: dict, data_file: Path) -> int:
    """Graph inputs named like a tensor become initializers whose bytes go to data_file, one tensor at a time."""
    kept, written = [], 0
    with data_file.open("wb") as out:
        for value in model.graph.input:
            tensor = tensors.get(value.name)
            if tensor is None:
                kept.append(value)
                continue
            model.graph.initializer.append(_write_tensor(value.name, tensor, out, data_file.name))
            written += tensor.numel() * tensor.element_size()
    del model.graph.input[:]
    model.graph.input.extend(kept)
    return written


def _write_tensor(name: str, tensor, out, location: str) -> onnx.TensorProto:
    import torch  # noqa: PLC0415

    tensor = tensor.detach().contiguous()
    raw = tensor.reshape(-1).view(torch.uint8).numpy()  # the tensor's own bytes (a view, not a copy)
    offset = out.tell()
    out.write(memoryview(raw))
    out.write(b"\0" * (-out.tell() % ALIGN))
    proto = onnx.TensorProto(name=name, data_type=_onnx_type(tensor.dtype), dims=list(tensor.shape),
                             data_location=onnx.TensorProto.EXTERNAL)
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(raw.nbytes))):
        proto.external_data.add(key=key, value=value)
    return proto


def _onnx_type(dtype) -> int:
    import torch  # noqa: PLC0415

    if dtype == torch.bfloat16:
        return onnx.TensorProto.BFLOAT16
    return onnx.helper.np_dtype_to_tensor_dtype(np.dtype(str(dtype).removeprefix("torch.")))


def inline_weights(path: Path) -> None:
    """Move the external weights back into the .onnx (small graphs: one file is simpler to ship)."""
    model = onnx.load(str(path), load_external_data=False)
    load_external_data_for_model(model, str(path.parent))
    onnx.save_model(model, str(path))
    data_path(path).unlink(missing_ok=True)


def weight_bytes(model: onnx.ModelProto, base: Path) -> int:
    """Bytes of the initializers, inline or external (from the recorded length, else the file's size)."""
    total = 0
    for tensor in model.graph.initializer:
        info = {e.key: e.value for e in tensor.external_data}
        if not uses_external_data(tensor):
            total += len(tensor.raw_data)
        else:
            total += int(info["length"]) if "length" in info else (base / info["location"]).stat().st_size
    return total


# floating-point initializer types: (name, bytes per element)
_WEIGHT_DTYPES = {onnx.TensorProto.FLOAT: ("fp32", 4), onnx.TensorProto.FLOAT16: ("fp16", 2),
                  onnx.TensorProto.BFLOAT16: ("bf16", 2)}


def weights_dtype(path: Path) -> str:
    """The dtype holding most of the graph's floating-point weight bytes (read from the graph, weights not
    loaded): what the engine computes in under a provider that runs the graph as it is."""
    model = onnx.load(str(path), load_external_data=False)
    totals: dict[str, int] = {}
    for tensor in model.graph.initializer:
        if tensor.data_type in _WEIGHT_DTYPES:
            name, size = _WEIGHT_DTYPES[tensor.data_type]
            totals[name] = totals.get(name, 0) + size * int(np.prod(tensor.dims, dtype=np.int64))
    return max(totals, key=totals.get) if totals else "fp32"


def check_weights_dtype(path: Path, expected: str) -> None:
    """The build records a precision; a graph exported in another dtype would make that record a label only."""
    got = weights_dtype(path)
    if got != expected:
        raise BuildError(f"{path.name}: weights exported in {got}, the build records {expected}")


def max_abs_diff(got: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(got.astype(np.float64) - expected.astype(np.float64)).max())


def check_session(path: Path):
    """An ONNX Runtime CPU session for the build's accuracy check that holds the weights once: no graph
    optimizations (on CPU they fold the Casts ORT inserts around fp16 ops into fp32 copies of the weights),
    no prepacked weight copies, no memory arena (it keeps the per-op fp32 temporaries). ONNX Runtime maps the
    external data file, so the weights it reads are the file's pages. Serving sessions keep their own settings."""
    import onnxruntime as ort  # noqa: PLC0415

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.add_session_config_entry("session.disable_prepacking", "1")
    options.enable_cpu_mem_arena = False
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
