"""Typed config.pbtxt parameters of the embedding models, written by the builder and parsed once at load."""
from __future__ import annotations

from dataclasses import dataclass

from runtime.embeddings.pooling import PoolingMode, PoolingSpec
from runtime.embeddings.session import OrtOptions


def _bool(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class TokenizerParams:
    max_input_tokens: int

    def to_parameters(self) -> dict[str, str]:
        return {"max_input_tokens": str(self.max_input_tokens)}

    @classmethod
    def from_parameters(cls, params: dict[str, str]) -> "TokenizerParams":
        return cls(int(params["max_input_tokens"]))


@dataclass(frozen=True)
class EncoderParams:
    pooling: PoolingSpec
    ort: OrtOptions = OrtOptions()
    # rows x padded length per engine call: bounds memory on large merges; on CPU, ~1k-token calls measured
    # faster than both 32-row requests and 8k-token calls (cache-sized activations), see bench/results
    max_batch_tokens: int = 1024
    engine_file: str = "model.onnx"
    length_tiers: tuple[int, ...] = ()  # TensorRT profiles' length bounds (empty: no tiers, the CPU default)

    def to_parameters(self) -> dict[str, str]:
        tiers = {"length_tiers": ",".join(map(str, self.length_tiers))} if self.length_tiers else {}
        # (no empty values: Triton's JSON form of a parameter drops an empty string_value)
        return {"pooling": self.pooling.mode.value, "normalize": str(self.pooling.normalize).lower(),
                "intra_op_threads": str(self.ort.intra_op_threads),
                "allow_spinning": str(self.ort.allow_spinning).lower(),
                "max_batch_tokens": str(self.max_batch_tokens), "engine_file": self.engine_file, **tiers}

    @classmethod
    def from_parameters(cls, params: dict[str, str]) -> "EncoderParams":
        return cls(PoolingSpec(PoolingMode(params.get("pooling", "mean")), _bool(params.get("normalize", "true"))),
                   OrtOptions(int(params.get("intra_op_threads", "0")), _bool(params.get("allow_spinning", "false"))),
                   int(params.get("max_batch_tokens", "1024")), params.get("engine_file", "model.onnx"),
                   tuple(int(t) for t in params.get("length_tiers", "").split(",") if t))
