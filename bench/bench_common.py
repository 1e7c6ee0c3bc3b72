"""Helpers shared by the benchmarks (imported by the scripts beside it)."""

from __future__ import annotations

import psutil


def tree_cpu_s(pid: int | None = None) -> float:
    """User + system CPU seconds used so far by a process and its live children.

    Args:
        pid: The root process; None means this one.
    """
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            continue  # exited between the listing and the read
    return total
