"""Typed image-model config (config.pbtxt parameters written by the builder) and request validation.

Both sides of the wire use it: the adapter validates a request against the served model's parameters before
calling Triton, and the pipeline model validates again for callers that talk to Triton directly.
"""
from __future__ import annotations

from dataclasses import dataclass

from runtime.errors import ClientError

MAX_IMAGES = 10  # OpenAI's limit for `n`


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    n: int
    width: int
    height: int
    steps: int
    guidance: float
    seed: int  # image i uses seed + i
    negative_prompt: str | None = None  # None: zeros when the model says force_zeros_for_empty_prompt


@dataclass(frozen=True)
class ImageModelConfig:
    sizes: tuple[tuple[int, int], ...]  # supported (width, height)
    default_size: tuple[int, int]
    default_steps: int
    default_guidance: float
    max_steps: int
    max_guidance: float
    force_zeros_for_empty_prompt: bool = True
    max_batch_images: int = 8  # images of queued requests denoised together (UNet batch = 2x with CFG)
    ort_threads: int = 0  # ONNX Runtime intra-op threads per engine; 0: its default (one per core)
    torch_threads: int = 1  # torch only runs the scheduler's small per-step ops (see engines.set_torch_threads)

    @classmethod
    def from_parameters(cls, params: dict[str, str]) -> "ImageModelConfig":
        return cls(sizes=tuple(parse_size_list(params["sizes"])), default_size=_size(params["default_size"]),
                   default_steps=int(params["default_steps"]), default_guidance=float(params["default_guidance"]),
                   max_steps=int(params["max_steps"]), max_guidance=float(params["max_guidance"]),
                   force_zeros_for_empty_prompt=params.get("force_zeros_for_empty_prompt", "true") == "true",
                   max_batch_images=int(params.get("max_batch_images", "8")),
                   ort_threads=int(params.get("ort_threads", "0")),
                   torch_threads=int(params.get("torch_threads", "1")))

    def to_parameters(self) -> dict[str, str]:
        return {"sizes": format_sizes(self.sizes), "default_size": format_size(self.default_size),
                "default_steps": str(self.default_steps), "default_guidance": str(self.default_guidance),
                "max_steps": str(self.max_steps), "max_guidance": str(self.max_guidance),
                "force_zeros_for_empty_prompt": str(self.force_zeros_for_empty_prompt).lower(),
                "max_batch_images": str(self.max_batch_images), "ort_threads": str(self.ort_threads),
                "torch_threads": str(self.torch_threads)}

    def supported_sizes_text(self) -> str:
        return ", ".join(format_size(s) for s in self.sizes)

    def check_size(self, width: int, height: int) -> None:
        if (width, height) not in self.sizes:
            raise ClientError(f"Unsupported size '{width}x{height}'. Supported sizes: {self.supported_sizes_text()} "
                              "(WIDTHxHEIGHT or WIDTH*HEIGHT).", "size", "invalid_size")

    def validate(self, req: GenerationRequest) -> None:
        if not req.prompt.strip():
            raise ClientError("'prompt' must be a non-empty string.", "prompt", "invalid_prompt")
        if not 1 <= req.n <= MAX_IMAGES:
            raise ClientError(f"'n' must be between 1 and {MAX_IMAGES}, got {req.n}.", "n", "invalid_value")
        self.check_size(req.width, req.height)
        if not 1 <= req.steps <= self.max_steps:
            raise ClientError(f"'num_inference_steps' must be between 1 and {self.max_steps}, got {req.steps}.",
                              "num_inference_steps", "invalid_value")
        if not 0.0 <= req.guidance <= self.max_guidance:
            raise ClientError(f"'guidance_scale' must be between 0 and {self.max_guidance}, got {req.guidance}.",
                              "guidance_scale", "invalid_value")
        if req.seed < 0 or req.seed + req.n > 2**63 - 1:
            raise ClientError("'seed' must be a non-negative 64-bit integer.", "seed", "invalid_value")


def format_size(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def format_sizes(sizes) -> str:
    return ",".join(format_size(s) for s in sizes)


def parse_size_list(text: str) -> list[tuple[int, int]]:
    return [_size(item) for item in text.split(",") if item.strip()]


def _size(text: str) -> tuple[int, int]:
    width, height = text.strip().lower().split("x")
    return int(width), int(height)
