"""glibc malloc settings that make a process's peak memory a property of its work, not of the machine's load.

Left to itself glibc raises its mmap threshold each time a large block is freed (up to 32 MiB), so later tensors
of that size come from the heap, where a freed one stays mapped until the heap's top is free; and a thread that
finds its arena locked by another opens a new arena, so how many arenas hold freed memory depends on how the
threads (torch's and ONNX Runtime's pools) happened to collide. Both depend on timing: the same e5-large export
peaked at 1.6x-2.5x its weights from run to run. A fixed threshold sends every large block to its own mapping,
returned to the system when freed, and one arena leaves no memory stranded in others.

Users: the builders (an export's peak), and the LLM engine's process (Triton runs each instance in its own stub
process), whose prompts' activations are freed after each prefill (runtime/llm/slot_session.py) and must not stay
resident beside the weights and the KV cache.
"""
from __future__ import annotations

import ctypes
import sys

_M_MMAP_THRESHOLD = -3  # mallopt(3) parameter numbers (malloc.h)
_M_ARENA_MAX = -8
MMAP_THRESHOLD = 64 * 1024  # bytes; setting it also turns glibc's dynamic threshold off
ARENAS = 1


def bound_allocator() -> bool:
    """Apply the settings to this process (call before the heavy imports); False where malloc is not glibc's."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except AttributeError:  # musl and other libcs
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_ARENA_MAX, ARENAS))
