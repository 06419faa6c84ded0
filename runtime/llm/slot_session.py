"""The LLM engine: an onnxruntime-genai decoder graph (GroupQueryAttention with rotary inside, fused norms,
MatMulNBits for int4/int8) driven slot by slot over KV buffers allocated once.

The cache is one buffer per layer and K/V, [slots, kv_heads, max_len, head_dim], on the engine's device (numpy
on the CPU, torch on a GPU). Each call binds a contiguous range of slot rows as both past and present of the
graph: GroupQueryAttention sees the same address for both and writes the new positions in place
(past_present_share_buffer), so nothing outside the graph touches the cache per step. A row's length is its own
(seqlens_k, from the attention mask's row sums): no padding, no copies when sequences join or leave. The
buffers take the graph's cache dtype: its activation dtype, or int8 where the attention quantizes the cache itself
(builders/llm/kv_cache.py).

- prefill(slot, tokens, start): one sequence, its row alone; with start > 0 the first `start` positions are
  already cached (a reused prefix) and only the rest runs. Long prompts run in chunks of `prefill_chunk` tokens:
  the CPU kernel's score buffer is heads x chunk x max_len floats.
- decode(slots, tokens): rows min(slots)..max(slots) in one call. A row in that range that is not decoding gets
  a throwaway token written just past its cached positions, where nothing reads it.
- copy(source, targets, length): forks and prefix reuse; the only cache copies there are.

The graph's logits are those of the last position only (builders/llm/export.py trims the LM head to it).
On a GPU (CudaSlotSession) the buffers and logits are torch tensors on the device, ONNX Runtime computes on a
dedicated stream fenced against torch's at every run (runtime/cuda_stream.py), and the scheduler samples the
logits there; only the token ids come back to the host.
"""
from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import ml_dtypes
import numpy as np

from runtime.llm.session import EngineSession
from runtime.providers import CPU, Providers, create_session

log = logging.getLogger(__name__)
GENAI_CONFIG = "genai_config.json"
DEFAULT_PREFILL_CHUNK = 512
# graph type -> (ONNX element type for I/O binding, host dtype); numpy has no bfloat16, ml_dtypes does;
# int8: a quantized cache (the attention holds its scales and converts on write and read)
_ELEMENTS = {"tensor(float)": (1, np.dtype(np.float32)), "tensor(float16)": (10, np.dtype(np.float16)),
             "tensor(bfloat16)": (16, np.dtype(ml_dtypes.bfloat16)), "tensor(int8)": (3, np.dtype(np.int8))}


LOGITS_TO_KEEP = "logits_to_keep"  # the graph's input (builders/llm/export.py): last positions through the head
_KEEP_LAST, _KEEP_NONE = np.array([1], np.int64), np.array([0], np.int64)


def _torch_dtype(element: int):
    import torch  # noqa: PLC0415

    return {1: torch.float32, 10: torch.float16, 16: torch.bfloat16, 3: torch.int8}[element]


@dataclass(frozen=True)
class CacheShape:
    kv_heads: int
    head_dim: int
    context: int  # positions the graph's rotary tables cover

    @classmethod
    def from_genai_config(cls, model_dir: Path) -> "CacheShape":
        decoder = json.loads((Path(model_dir) / GENAI_CONFIG).read_text())["model"]
        d = decoder["decoder"]
        return cls(d["num_key_value_heads"], d["head_size"], decoder["context_length"])


class HostBuffers:
    """KV buffers in host memory (the CPU execution provider)."""

    device = ("cpu", 0)

    def __init__(self, count: int, shape: tuple[int, ...], graph_type: str):
        self.element, dtype = _ELEMENTS[graph_type]
        self.arrays = [np.zeros(shape, dtype) for _ in range(count)]  # pages are committed as rows fill
        self.row_bytes = int(np.prod(shape[1:])) * dtype.itemsize

    def address(self, i: int, row: int) -> int:
        return self.arrays[i].ctypes.data + row * self.row_bytes

    def copy(self, source: int, targets: Sequence[int], length: int) -> None:
        for a in self.arrays:  # a: [slots, H, max_len, D]
            a[list(targets), :, :length] = a[source, :, :length]

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays)


class HostLogits:
    """The graph's logits [slots, 1, vocab] in host memory, read as float32 numpy rows."""

    device = ("cpu", 0)

    def __init__(self, slots: int, vocab: int, graph_type: str):
        self.element, dtype = _ELEMENTS[graph_type]
        self.raw = np.zeros((slots, vocab), dtype)

    def address(self) -> int:
        return self.raw.ctypes.data

    def rows(self, rows: int) -> np.ndarray:
        out = self.raw[:rows]
        return out if out.dtype == np.float32 else out.astype(np.float32)

    def first(self) -> np.ndarray:
        return self.raw[0].astype(np.float32)  # a copy: the next call overwrites the buffer


class SlotSession(EngineSession):
    def __init__(self, model_path: str | Path, slots: int, max_len: int, intra_op_threads: int = 0,
                 providers: Providers | None = None, prefill_chunk: int = DEFAULT_PREFILL_CHUNK,
                 spinning: bool = False):
        import onnxruntime as ort  # noqa: PLC0415

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = intra_op_threads
        opts.inter_op_num_threads = 1
        # Spinning intra-op threads wake faster between operators, but the served engine shares its cores with
        # Triton and the adapter, which need them between steps: off unless asked for (in-process benches).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        self.sess = create_session(model_path, providers or [(CPU, {})], opts)
        # A prompt's activations (a chunk's attention scores, its MLP's intermediate) dwarf a decode step's: the
        # arena gives them back after each prompt run instead of holding its peak beside the weights.
        self._prompt_run = ort.RunOptions()
        self._prompt_run.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        inputs = {i.name: i for i in self.sess.get_inputs()}
        if LOGITS_TO_KEEP not in inputs:
            raise ValueError(f"{model_path} has no {LOGITS_TO_KEEP} input: an older builder's graph; rebuild the "
                             f"model (python -m builders llm)")
        self.past_names = [n for n in inputs if n.startswith("past_key_values.")]
        self.present_names = [n.replace("past_key_values.", "present.") for n in self.past_names]
        shape = CacheShape.from_genai_config(Path(model_path).parent)
        if max_len > shape.context:
            raise ValueError(f"max_len {max_len} is past the graph's rotary tables ({shape.context} positions)")
        self.slots, self.max_len, self.prefill_chunk = slots, max_len, prefill_chunk
        self.row_shape = (shape.kv_heads, max_len, shape.head_dim)
        self.cache_type = inputs[self.past_names[0]].type
        self.buffers = self._allocate(len(self.past_names), (slots, *self.row_shape), self.cache_type)
        logits = next(o for o in self.sess.get_outputs() if o.name == "logits")
        self.vocab_size = int(logits.shape[-1])
        self.logits = self._logits(slots, self.vocab_size, logits.type)
        self.lengths = np.zeros(slots, np.int64)  # positions cached per slot
        self._bindings: dict[tuple[int, int], object] = {}
        log.info("KV cache: %d buffers of %s %s = %.1f MiB", len(self.past_names), (slots, *self.row_shape),
                 self.cache_type, self.buffers.nbytes / 2**20)

    def _allocate(self, count: int, shape: tuple[int, ...], graph_type: str):
        return HostBuffers(count, shape, graph_type)

    def _logits(self, slots: int, vocab: int, graph_type: str):
        return HostLogits(slots, vocab, graph_type)

    @property
    def kv_cache_bytes(self) -> int:
        return self.buffers.nbytes

    # -- EngineSession ------------------------------------------------------------------------------------
    def prefill(self, slot: int, tokens: Sequence[int], start: int = 0, logits: bool = True) -> np.ndarray | None:
        tokens = np.asarray(tokens, np.int64)
        if not (0 <= start < len(tokens) or (not logits and start == len(tokens))) or len(tokens) > self.max_len:
            raise ValueError(f"prefill of {len(tokens)} tokens from {start} does not fit a slot of {self.max_len}")
        for begin in range(start, len(tokens), self.prefill_chunk):
            end = min(begin + self.prefill_chunk, len(tokens))
            head = logits and end == len(tokens)  # a chunk before the last needs no logits
            self._run(tokens[None, begin:end], np.ones((1, end), np.int64), slot, 1, head)
        self.lengths[slot] = len(tokens)
        return self.logits.first() if logits else None

    def decode(self, slots: Sequence[int], tokens: Sequence[int]) -> np.ndarray:
        slots = np.asarray(slots, np.int64)
        first = int(slots.min())
        rows, index = int(slots.max()) + 1 - first, slots - first
        if int(self.lengths[slots].max()) + 1 > self.max_len:
            raise ValueError(f"decode past the cache's {self.max_len} positions")
        ids = np.zeros((rows, 1), np.int64)
        ids[index, 0] = tokens
        total = np.minimum(self.lengths[first:first + rows] + 1, self.max_len)  # a row not decoding: at its length
        mask = (np.arange(int(total.max()))[None, :] < total[:, None]).astype(np.int64)  # row sums: seqlens_k + 1
        self._run(ids, mask, first, rows)
        self.lengths[slots] += 1
        logits = self.logits.rows(rows)
        if rows == len(slots) and np.array_equal(index, np.arange(rows)):
            return logits  # the usual case: no copy of [rows, vocab]
        return logits[index.tolist()]

    def copy(self, source: int, targets: Sequence[int], length: int) -> None:
        targets = [t for t in targets if t != source]
        if targets and length:
            self.buffers.copy(source, targets, length)
        self.lengths[targets] = length

    # -- one engine call ----------------------------------------------------------------------------------
    def _run(self, ids: np.ndarray, mask: np.ndarray, first_row: int, rows: int, logits: bool = True) -> None:
        """ids [rows, new], mask [rows, total]: rows first_row.. of the cache as past and present at once; without
        logits the LM head does not run."""
        binding = self._binding(first_row, rows, logits)
        binding.bind_cpu_input("input_ids", ids)
        binding.bind_cpu_input("attention_mask", mask)
        with self._fenced():
            self.sess.run_with_iobinding(binding, self._prompt_run if ids.shape[1] > 1 else None)

    def _fenced(self):
        return contextlib.nullcontext()  # host buffers: nothing to order

    def _binding(self, first_row: int, rows: int, logits: bool):
        """The cache and logits bindings of a row range, made once: a step rebinds only its two small inputs."""
        key = (first_row, rows, logits)
        if key not in self._bindings:
            binding = self.sess.io_binding()
            kind, index = self.buffers.device
            shape = [rows, *self.row_shape]
            for i, (past, present) in enumerate(zip(self.past_names, self.present_names)):
                address = self.buffers.address(i, first_row)
                binding.bind_input(past, kind, index, self.buffers.element, shape, address)
                binding.bind_output(present, kind, index, self.buffers.element, shape, address)
            binding.bind_cpu_input(LOGITS_TO_KEEP, _KEEP_LAST if logits else _KEEP_NONE)
            if logits:
                binding.bind_output("logits", *self.logits.device, self.logits.element, [rows, 1, self.vocab_size],
                                    self.logits.address())
            else:  # [rows, 0, vocab]: nothing to hold
                binding.bind_output("logits", *self.logits.device)
            self._bindings[key] = binding
        return self._bindings[key]


class DeviceBuffers:
    """KV buffers as torch tensors on `device`. Their copies are torch work on torch's current stream; on a GPU
    each engine run is fenced against that stream (runtime/cuda_stream.py), so copies and runs stay ordered
    without a host synchronization."""

    def __init__(self, count: int, shape: tuple[int, ...], graph_type: str, device):
        import torch  # noqa: PLC0415

        self.torch = torch
        self.element = _ELEMENTS[graph_type][0]
        self.tensors = [torch.zeros(shape, dtype=_torch_dtype(self.element), device=device) for _ in range(count)]
        self.device = (device.type, device.index or 0)
        self.row_bytes = int(np.prod(shape[1:])) * self.tensors[0].element_size()

    def address(self, i: int, row: int) -> int:
        return self.tensors[i].data_ptr() + row * self.row_bytes

    def copy(self, source: int, targets: Sequence[int], length: int) -> None:
        index = self.torch.tensor(list(targets), device=self.tensors[0].device)
        for t in self.tensors:  # t: [slots, H, max_len, D]
            t[index, :, :length] = t[source, :, :length]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors)


class DeviceLogits:
    """The graph's logits as a torch tensor on the engine's device, read as float32 rows there: the scheduler
    samples them on the device (runtime/llm/sampling_torch.py); only token ids come back."""

    def __init__(self, slots: int, vocab: int, graph_type: str, device):
        import torch  # noqa: PLC0415

        self.element = _ELEMENTS[graph_type][0]
        self.raw = torch.zeros((slots, vocab), dtype=_torch_dtype(self.element), device=device)
        self.device = (device.type, device.index or 0)

    def address(self) -> int:
        return self.raw.data_ptr()

    def rows(self, rows: int):
        return self.raw[:rows].float()  # float32 already: a view the sampler may use as scratch

    def first(self):
        return self.raw[0].float().clone()


class TorchSlotSession(SlotSession):
    """The engine over torch tensors (KV buffers and logits) on `device`: CudaSlotSession on a GPU; on the CPU
    (the CPU provider) its host-side logic in tests. With a `stream` (runtime/cuda_stream.py) every engine run
    is fenced against torch's current stream."""

    def __init__(self, model_path: str | Path, slots: int, max_len: int, intra_op_threads: int = 0,
                 providers: Providers | None = None, prefill_chunk: int = DEFAULT_PREFILL_CHUNK, device=None,
                 stream=None):
        import torch  # noqa: PLC0415

        self.device, self.stream = device or torch.device("cpu"), stream
        super().__init__(model_path, slots, max_len, intra_op_threads, providers, prefill_chunk)

    def _allocate(self, count: int, shape: tuple[int, ...], graph_type: str):
        return DeviceBuffers(count, shape, graph_type, self.device)

    def _logits(self, slots: int, vocab: int, graph_type: str):
        return DeviceLogits(slots, vocab, graph_type, self.device)

    def _fenced(self):
        return self.stream.fenced() if self.stream is not None else contextlib.nullcontext()


class CudaSlotSession(TorchSlotSession):
    """The same engine on a GPU (CUDA execution provider): torch buffers on the device and a dedicated stream
    (never torch's default one, whose handle 0 ONNX Runtime reads as "no stream")."""

    def __init__(self, model_path: str | Path, slots: int, max_len: int, target, device_id: int = 0,
                 prefill_chunk: int = DEFAULT_PREFILL_CHUNK):
        import torch  # noqa: PLC0415

        from runtime.cuda_stream import DeviceStream  # noqa: PLC0415
        from runtime.gpu_probe import check_gpu_provider  # noqa: PLC0415
        from runtime.providers import CUDA, GpuOptions, providers_for  # noqa: PLC0415

        check_gpu_provider(CUDA, device_id)  # before torch.cuda, whose errors would not name what is missing
        device = torch.device("cuda", device_id)
        stream = DeviceStream(device)
        providers = providers_for(target, GpuOptions(device_id, stream=stream.handle))
        super().__init__(model_path, slots, max_len, providers=providers, prefill_chunk=prefill_chunk,
                         device=device, stream=stream)
