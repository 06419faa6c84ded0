"""The encoder engine behind a small interface: token ids + mask in, token states out.

OrtEncoderSession runs an ONNX file with ONNX Runtime in this process: on the CPU (the embedded default), or on
a GPU through the execution providers of its EngineTarget (runtime/providers.py). GPU builds append pooling to
the graph (builders/embeddings/pooled_graph.py): such a session `pools`, returning [B, H] vectors, so only
those are copied back from the device.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from runtime.providers import GpuOptions, open_session
from runtime.target import EngineTarget


class EncoderSession(Protocol):
    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """input_ids, attention_mask: [B, L] int64 -> last hidden state [B, L, H] float."""


@dataclass(frozen=True)
class OrtOptions:
    intra_op_threads: int = 0  # 0: one per CPU this process may run on
    allow_spinning: bool = False  # spinning threads steal the CPU that tokenization and the server need

    def resolved_threads(self) -> int:
        return self.intra_op_threads or len(os.sched_getaffinity(0))


class OrtEncoderSession:
    def __init__(self, onnx_path: str | Path, options: OrtOptions = OrtOptions(), target: EngineTarget = EngineTarget(),
                 device_id: int = 0):
        import onnxruntime as ort  # noqa: PLC0415  (heavy; only engines need it)

        so = ort.SessionOptions()
        so.intra_op_num_threads = options.resolved_threads()
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if options.allow_spinning else "0")
        self._session = open_session(onnx_path, target, so, GpuOptions(device_id))
        self._input_names = {i.name for i in self._session.get_inputs()}
        output = self._session.get_outputs()[0]
        self._output = output.name
        self.pools = len(output.shape) == 2  # [B, H]: pooling (and L2) ran inside the graph

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self._input_names:  # one segment: all zeros
            feed["token_type_ids"] = np.zeros_like(input_ids)
        return self._session.run([self._output], feed)[0]
