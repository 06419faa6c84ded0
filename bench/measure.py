"""Measurement helpers shared by the benchmarks."""
from __future__ import annotations

import os
from pathlib import Path


def cpu_seconds(process_groups: tuple[int, ...] = ()) -> float:
    """CPU time (user + system) of this process plus every process in the given process groups (tritonserver,
    its Python-backend stubs, the adapter): the work a side costs, whatever else shares the machine."""
    return sum(os.times()[:2]) + group_cpu_seconds(process_groups)


def group_cpu_seconds(process_groups: tuple[int, ...]) -> float:
    """CPU time (user + system) of every process in the given process groups."""
    if not process_groups:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) in process_groups:  # fields after "(comm)": state ppid pgrp ... utime(11) stime(12)
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total
