"""ONNX Runtime engine session: the exported decoder (builders/llm/export.py) with an in-process KV cache.

The cache is one left-padded batch tensor per layer and K/V: [rows, kv_heads, past, head_dim], with an
attention mask [rows, past] marking padding. In steady decoding the present outputs stay ORT-owned OrtValues
bound (I/O binding) as the next step's past inputs: no numpy round trip and no copy outside the graph.
Numpy copies happen only when the batch changes (rows join after prefill, leave, or fork). Leading columns
that are padding in every row are trimmed when rows leave.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import onnxruntime as ort

from runtime.llm.session import EngineSession
from runtime.providers import CPU, Providers, create_session

_NP_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
_DEAD = -1


class OrtSession(EngineSession):
    def __init__(self, model_path: str | Path, intra_op_threads: int = 0, providers: Providers | None = None):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = intra_op_threads
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.sess = create_session(model_path, providers or [(CPU, {})], opts)
        inputs = {i.name: i for i in self.sess.get_inputs()}
        self.past_names = [n for n in inputs if n.startswith("past_key_values.")]
        self.present_names = [o.name for o in self.sess.get_outputs()][1:]
        first = inputs[self.past_names[0]]
        self.kv_heads, self.head_dim = first.shape[1], first.shape[3]
        self.cache_dtype = _NP_TYPES[first.type]
        self.vocab_size = self.sess.get_outputs()[0].shape[1]
        self._reset()

    # -- state ------------------------------------------------------------------------------------------
    def _reset(self) -> None:
        self.rows: list[int] = []                # slot of each cache row (_DEAD once released)
        self.past: list = []                     # OrtValue or ndarray per cache tensor: [rows, H, past, D]
        self.mask = np.zeros((0, 0), np.int64)   # [rows, past]
        self.lengths: dict[int, int] = {}        # slot -> real tokens in its cache (its next position)

    def _empty_past(self, rows: int) -> list[np.ndarray]:
        return [np.zeros((rows, self.kv_heads, 0, self.head_dim), self.cache_dtype) for _ in self.past_names]

    def _past_arrays(self) -> list[np.ndarray]:
        return [p if isinstance(p, np.ndarray) else p.numpy() for p in self.past]

    # -- EngineSession --------------------------------------------------------------------------------
    def prefill(self, slots: Sequence[int], prompts: Sequence[Sequence[int]]) -> np.ndarray:
        width = max(len(p) for p in prompts)
        ids = np.zeros((len(prompts), width), np.int64)
        mask = np.zeros((len(prompts), width), np.int64)
        for r, prompt in enumerate(prompts):  # left padding: every row's last token sits in the last column
            ids[r, width - len(prompt):] = prompt
            mask[r, width - len(prompt):] = 1
        positions = np.clip(mask.cumsum(axis=1) - 1, 0, None)
        logits, presents = self._run(ids, mask, positions, self._empty_past(len(prompts)))
        self._join(list(slots), self._own(presents), mask)
        for slot, prompt in zip(slots, prompts):
            self.lengths[slot] = len(prompt)
        return logits

    def decode(self, slots: Sequence[int], tokens: Sequence[int]) -> np.ndarray:
        if _DEAD in self.rows:
            self._compact()
        if len(slots) != len(self.rows):
            raise ValueError(f"decode got {len(slots)} slots but {len(self.rows)} are live: decode all of them")
        row_of = {slot: r for r, slot in enumerate(self.rows)}
        order = np.array([row_of[s] for s in slots])
        ids = np.zeros((len(self.rows), 1), np.int64)
        ids[order, 0] = tokens
        positions = np.array([[self.lengths[s]] for s in self.rows], np.int64)
        self.mask = np.concatenate([self.mask, np.ones((len(self.rows), 1), np.int64)], axis=1)
        logits, self.past = self._run(ids, self.mask, positions, self.past)
        for s in slots:
            self.lengths[s] += 1
        if np.array_equal(order, np.arange(len(order))):
            return logits  # the usual case: no copy of [rows, vocab] (16 MB a step at 32 rows of 128,256 ids)
        return logits[order]

    def fork(self, src: int, dst: Sequence[int]) -> None:
        if not dst:
            return
        r = self.rows.index(src)
        take = [r] * len(dst)
        self.past = [self._cat([p, p[take]]) for p in self._past_arrays()]
        self.mask = np.concatenate([self.mask, self.mask[take]])
        self.rows += list(dst)
        for d in dst:
            self.lengths[d] = self.lengths[src]

    def release(self, slot: int) -> None:
        if slot in self.rows:
            self.rows[self.rows.index(slot)] = _DEAD
        self.lengths.pop(slot, None)

    # -- batch changes (the only copies) ----------------------------------------------------------------
    def _compact(self) -> None:
        """Drop released rows and the leading columns that are padding in every remaining row."""
        keep = [r for r, s in enumerate(self.rows) if s != _DEAD]
        if not keep:
            self._reset()
            return
        mask = self.mask[keep]
        lead = int(np.argmax(mask.any(axis=0))) if mask.size else 0
        self.past = [p[keep][:, :, lead:] for p in self._past_arrays()]
        self.past = [self._contiguous(p) for p in self.past]
        self.mask = np.ascontiguousarray(mask[:, lead:])
        self.rows = [self.rows[r] for r in keep]

    def _join(self, slots: list[int], presents: list[np.ndarray], mask: np.ndarray) -> None:
        if _DEAD in self.rows:
            self._compact()
        if not self.rows:
            self.rows, self.past, self.mask = slots, presents, mask
            return
        width = max(self.mask.shape[1], mask.shape[1])
        old = self._past_arrays()
        self.past = [self._cat([self._left_pad(a, width), self._left_pad(b, width)]) for a, b in zip(old, presents)]
        self.mask = np.concatenate([_left_pad_mask(self.mask, width), _left_pad_mask(mask, width)])
        self.rows = self.rows + slots

    # -- cache arrays: numpy on the CPU (runtime/llm/cuda_session.py keeps them as torch tensors on the GPU) --
    def _own(self, presents: list) -> list:
        return [p.numpy() for p in presents]

    def _cat(self, parts: list):
        return np.concatenate(parts)

    def _contiguous(self, x):
        return np.ascontiguousarray(x)

    def _left_pad(self, x, width: int):
        return _left_pad(x, width)

    # -- one engine call with I/O binding -------------------------------------------------------------
    def _run(self, ids: np.ndarray, mask: np.ndarray, positions: np.ndarray, past: list) -> tuple[np.ndarray, list]:
        binding = self.sess.io_binding()
        binding.bind_cpu_input("input_ids", ids)
        binding.bind_cpu_input("attention_mask", mask)
        binding.bind_cpu_input("position_ids", positions)
        for name, value in zip(self.past_names, past):
            if isinstance(value, np.ndarray):
                binding.bind_cpu_input(name, value)
            else:
                binding.bind_ortvalue_input(name, value)
        binding.bind_output("logits")
        for name in self.present_names:
            binding.bind_output(name)
        self.sess.run_with_iobinding(binding)
        outputs = binding.get_outputs()
        return outputs[0].numpy().astype(np.float32, copy=False), list(outputs[1:])


def _left_pad(x: np.ndarray, width: int) -> np.ndarray:
    """x: [rows, H, past, D] -> [rows, H, width, D] with zeros on the left."""
    extra = width - x.shape[2]
    return x if extra == 0 else np.pad(x, ((0, 0), (0, 0), (extra, 0), (0, 0)))


def _left_pad_mask(mask: np.ndarray, width: int) -> np.ndarray:
    extra = width - mask.shape[1]
    return mask if extra == 0 else np.pad(mask, ((0, 0), (extra, 0)))
