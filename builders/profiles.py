"""TensorRT optimization profiles computed from a model's limits, and the compile plan beside each graph.

Each family states the range of every dynamic axis of its graphs (`batch`, `sequence`, `height`, ...) from
the limits it was built with; the graph's own input shapes give the static dims. A builder writing a TensorRT
target places `<graph>.compile.json` beside each graph: its profiles and precision, all that `builders
compile` needs, so compiling is generic (no per-family code there).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from builders.progress import BuildError
from runtime.providers import Profile

PLAN_SUFFIX = ".compile.json"
Range = tuple[int, int, int]  # min, opt, max of one dynamic axis


@dataclass(frozen=True)
class CompilePlan:
    precision: str  # "fp16" builds fp16 kernels; "fp32" keeps them fp32 (the SDXL VAE)
    profiles: tuple[Profile, ...]

    def to_json(self) -> str:
        return json.dumps({"precision": self.precision, "profiles": [p.to_json() for p in self.profiles]}, indent=1)

    @classmethod
    def from_json(cls, text: str) -> "CompilePlan":
        data = json.loads(text)
        return cls(data["precision"], tuple(Profile.from_json(p) for p in data["profiles"]))


def plan_path(graph: Path) -> Path:
    return graph.with_name(graph.stem + PLAN_SUFFIX)


def graph_inputs(graph: Path) -> dict[str, list[int | str]]:
    """Input name -> shape (ints for static dims, the axis name for dynamic ones), weights not loaded."""
    import onnx  # noqa: PLC0415

    model = onnx.load(str(graph), load_external_data=False)
    initializers = {t.name for t in model.graph.initializer}
    return {i.name: [d.dim_param if d.dim_param else d.dim_value for d in i.type.tensor_type.shape.dim]
            for i in model.graph.input if i.name not in initializers}


def profile(inputs: dict[str, list[int | str]], ranges: dict[str, Range]) -> Profile:
    """One profile: every input's shape at min / opt / max, dynamic axes from `ranges`."""
    def shapes(k: int) -> dict[str, tuple[int, ...]]:
        return {name: tuple(_dim(d, ranges, k, name) for d in shape) for name, shape in inputs.items()}

    return Profile(shapes(0), shapes(1), shapes(2))


def _dim(dim: int | str, ranges: dict[str, Range], k: int, name: str) -> int:
    if isinstance(dim, int) and dim > 0:
        return dim
    if dim not in ranges:
        raise BuildError(f"input {name}: no range for dynamic axis {dim!r} (known: {', '.join(sorted(ranges))})")
    return ranges[dim][k]


def write_plan(graph: Path, precision: str, axis_ranges: list[dict[str, Range]]) -> Path:
    """Write <graph>.compile.json with one profile per ranges dict (disjoint ranges: TensorRT picks by shape)."""
    inputs = graph_inputs(graph)
    plan = CompilePlan(precision, tuple(profile(inputs, r) for r in axis_ranges))
    path = plan_path(graph)
    path.write_text(plan.to_json())
    return path


# -- the families' limits -> axis ranges ---------------------------------------------------------------

def encoder_ranges(max_len: int, max_rows: int, max_batch_tokens: int, tiers: tuple[int, ...]) -> list[dict]:
    """One profile per length tier: rows x tier length <= max_batch_tokens (runtime/embeddings/batching.py
    plans chunks on the same tiers), so no profile sizes activations for max rows x max length."""
    ranges, low = [], 1
    for high in tiers:
        rows = max(1, min(max_rows, max_batch_tokens // high))
        ranges.append({"batch": (1, rows, rows), "sequence": (low, high, high)})
        low = high + 1
    return ranges


def length_tiers(max_len: int, short: int = 128) -> tuple[int, ...]:
    return (short, max_len) if max_len > short else (max_len,)


def sdxl_ranges(component: str, sizes: list[tuple[int, int]], default: tuple[int, int], scale: int,
                max_images: int) -> dict[str, Range]:
    """Axis ranges of one SDXL engine: latent height/width from the served sizes, batch from the images per
    UNet call (x2 rows under classifier-free guidance); the text encoders see one request's prompts."""
    heights, widths = [h // scale for _, h in sizes], [w // scale for w, _ in sizes]
    spatial = {"height": (min(heights), default[1] // scale, max(heights)),
               "width": (min(widths), default[0] // scale, max(widths))}
    if component.startswith("text_encoder"):
        return {"batch": (1, 2, 2)}  # [negative, positive] of one request
    if component == "unet":
        return {"batch": (1, 2, 2 * max_images), **spatial}
    return {"batch": (1, 1, max_images), **spatial}
