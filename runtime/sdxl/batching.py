"""Which queued requests share one denoise loop: same size, steps and guidance, up to a number of images."""
from __future__ import annotations

from runtime.sdxl.config import GenerationRequest


def batch_key(req: GenerationRequest) -> tuple:
    """Requests with equal keys can share one denoise loop (same latent shape, timesteps and CFG)."""
    return req.width, req.height, req.steps, req.guidance


def plan_batches(reqs: dict[int, GenerationRequest], max_images: int) -> list[list[int]]:
    """Request indices grouped by batch_key (arrival order kept), each group holding at most max_images images
    (a request with more images than that runs alone)."""
    groups: dict[tuple, list[list[int]]] = {}
    for index, req in reqs.items():
        chunks = groups.setdefault(batch_key(req), [[]])
        if chunks[-1] and sum(reqs[i].n for i in chunks[-1]) + req.n > max_images:
            chunks.append([])
        chunks[-1].append(index)
    return [chunk for chunks in groups.values() for chunk in chunks]
