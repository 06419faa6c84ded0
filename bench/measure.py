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


def tree_cpu_seconds(root_pid: int) -> dict[str, float]:
    """CPU time (user + system) of a process and all its live descendants by command name (a `launcher serve`
    and its stack, whose children lead process groups of their own): tritonserver, triton_python_b (the
    Python-backend stubs), python (the adapter, its workers and the launcher)."""
    ticks = os.sysconf("SC_CLK_TCK")
    table: dict[int, tuple[int, str, float]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, rest = stat.read_text().rsplit(")", 1)
        except OSError:
            continue
        fields = rest.split()
        table[int(stat.parent.name)] = (int(fields[1]), head.split("(", 1)[1],
                                        (int(fields[11]) + int(fields[12])) / ticks)
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out: dict[str, float] = {}
    todo = [root_pid]
    while todo:
        pid = todo.pop()
        if pid in table:
            _, name, cpu = table[pid]
            out[name] = out.get(name, 0.0) + cpu
        todo += children.get(pid, [])
    return out
