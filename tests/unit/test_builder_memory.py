"""runtime/memory.py: freed tensor-sized blocks go back to the system whatever happened before them.

The probe reproduces what made a build's peak wander: once a 16 MiB block has been freed, glibc serves 8 MiB
blocks from the heap, and freeing all but the newest leaves them all resident. Run in a child process: mallopt
changes the allocator for the whole process."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import ctypes, sys
from runtime.memory import bound_allocator
if sys.argv[1] == "bound":
    assert bound_allocator()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
MiB = 1 << 20

def rss_mib():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) // 1024

big = libc.malloc(16 * MiB)  # freed, it raises glibc's dynamic mmap threshold above 8 MiB
ctypes.memset(big, 1, 16 * MiB)
libc.free(big)
blocks = [libc.malloc(8 * MiB) for _ in range(32)]
for block in blocks:
    ctypes.memset(block, 1, 8 * MiB)
before = rss_mib()
for block in blocks[:-1]:  # the newest stays in use, as the next tensor of a build does
    libc.free(block)
print(before - rss_mib())
"""


def _released_mib(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=ROOT, capture_output=True, text=True, check=True)
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_bounded_allocator_returns_freed_blocks_at_once():
    assert _released_mib("bound") >= 31 * 8 * 0.9


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_the_probe_shows_the_default_allocator_keeping_them():  # what the bound changes, on this libc
    assert _released_mib("plain") < 8 * 8
