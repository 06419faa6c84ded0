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


def tree_cpu_seconds(root_pid: int) -> float:
    """CPU time (user + system) of a process and all its live descendants (a `launcher serve` and its stack,
    whose children lead process groups of their own)."""
    ticks = os.sysconf("SC_CLK_TCK")
    parent, cpu = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parent[pid], cpu[pid] = int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks
    total, todo = 0.0, [root_pid]
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo += children.get(pid, [])
    return total
