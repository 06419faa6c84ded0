"""One tiny-sdxl build shared by the SDXL unit tests: checkpoint (seed 0) and its placed model folder."""
from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from builders.sdxl import TINY_ID, build_model
from builders.sdxl.tiny import make_tiny_sdxl

SIZES = "64x64,128x64"


@functools.cache
def tiny_build() -> tuple[Path, Path]:
    """(checkpoint dir, model version dir) with ONNX external data forced on every engine."""
    root = Path(tempfile.mkdtemp(prefix="tiny-sdxl-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    checkpoint = make_tiny_sdxl(root / "checkpoint", seed=0)
    version = build_model(checkpoint, root / "repo", TINY_ID, root / "work", sizes=SIZES, default_size="64x64",
                          steps=4, instances=2, ort_threads=1, external_data="always")
    return checkpoint, version
