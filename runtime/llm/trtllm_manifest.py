"""The manifest beside a TensorRT-LLM engine: how it was built and for what, checked when the model loads.

A TensorRT-LLM engine only runs on the GPU type, library version and number of ranks it was built for; the
builder records them (builders/llm/trtllm.py) and the generator refuses to load on a mismatch, naming both sides,
so the failure happens at load and not at the first request.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

MANIFEST_FILE = "trtllm_manifest.json"
ENGINE_DIR = "trtllm_engine"


@dataclass(frozen=True)
class TrtLlmManifest:
    tensor_parallel_size: int
    pipeline_parallel_size: int
    dtype: str                     # bf16 | fp16 (activations, and weights unless quantized)
    quantization: str              # none | fp8 | int8-weight-only
    max_batch_size: int
    max_num_tokens: int
    max_seq_len: int
    tensorrt_llm_version: str = ""  # empty until built (a dry run writes the rest)
    gpu: str = ""                   # torch.cuda.get_device_name() of the build node
    gather_generation_logits: bool = True  # logprobs on the TensorRT flow need the generation logits
    kv_cache_free_gpu_memory_fraction: float = 0.9
    commands: tuple[str, ...] = ()

    @property
    def world_size(self) -> int:
        return self.tensor_parallel_size * self.pipeline_parallel_size

    @property
    def built(self) -> bool:
        return bool(self.tensorrt_llm_version and self.gpu)

    def write(self, path: Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def read(cls, path: Path) -> "TrtLlmManifest":
        obj = json.loads(Path(path).read_text())
        known = {f.name for f in fields(cls)}
        obj = {k: v for k, v in obj.items() if k in known}
        obj["commands"] = tuple(obj.get("commands", ()))
        return cls(**obj)

    def check_built(self) -> None:
        if not self.built:
            raise RuntimeError("the TensorRT-LLM engine was never built (the entry comes from a --dry-run): run the "
                               "builder without --dry-run on a GPU node of the serving type")

    def check(self, installed_version: str, gpu_name: str, gpu_count: int) -> None:
        """Raise (at model load) when this node cannot run the engine; every message names both sides."""
        self.check_built()
        if installed_version != self.tensorrt_llm_version:
            raise RuntimeError(f"engine built with TensorRT-LLM {self.tensorrt_llm_version}, this node has "
                               f"{installed_version or 'none'}: rebuild the engine with the serving version")
        if gpu_name != self.gpu:
            raise RuntimeError(f"engine built for {self.gpu}, this node has {gpu_name or 'no GPU'}: rebuild it on "
                               f"the serving GPU type")
        if gpu_count < self.world_size:
            raise RuntimeError(f"engine needs {self.world_size} GPUs (tp={self.tensor_parallel_size} x "
                               f"pp={self.pipeline_parallel_size}), this node has {gpu_count}")
