"""Helpers shared by the benchmarks (imported by the scripts beside it)."""

from __future__ import annotations

import os
import threading

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


class LoadSampler:
    """Samples the machine's 1-minute load average in a thread while a block runs.

    The reference machine is shared: a wall-clock figure means little without how busy the
    machine was while it was measured, and one reading at the end can miss a burst in the middle.

    Example:
        with LoadSampler() as load:
            run_the_thing()
        result.update(load.summary())  # load_1m_mean, load_1m_max, load_1m_samples

        # or, where a ``with`` block would re-indent the measured code:
        load = LoadSampler().start()
        ...
        result.update(load.stop().summary())
    """

    def __init__(self, interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.samples.append(os.getloadavg()[0])

    def start(self) -> LoadSampler:
        """Take a first sample and start sampling; returns self (``load = LoadSampler().start()``)."""
        self.samples.append(os.getloadavg()[0])
        self._thread.start()
        return self

    def stop(self) -> LoadSampler:
        """Stop sampling, with a last sample; returns self."""
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join()
            self.samples.append(os.getloadavg()[0])
        return self

    def __enter__(self) -> LoadSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def summary(self) -> dict[str, float | int]:
        """Mean and max of the 1-minute load over the block, and how many samples they are of."""
        values = self.samples or [os.getloadavg()[0]]
        return {
            "load_1m_mean": round(sum(values) / len(values), 2),
            "load_1m_max": round(max(values), 2),
            "load_1m_samples": len(values),
        }
