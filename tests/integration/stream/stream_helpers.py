"""Helpers of the speed-layer integration tests (the online store is the project's ``features/`` repo)."""

from __future__ import annotations

import time
from collections.abc import Callable

from lambdarec.stream.feast_local import online_session_features

__all__ = ["job_args", "online_session_features", "wait_for"]


def job_args(topics: dict[str, str], *extra: str) -> list[str]:
    """Arguments pointing the job at the module's topics, with short checkpoints."""
    return [
        "--source-topic", topics["source"],
        "--dlq-topic", topics["dlq"],
        "--session-topic", topics["session"],
        "--user-topic", topics["user"],
        "--item-topic", topics["item"],
        "--group-id", f"speed-layer-{topics['source']}",
        "--checkpoint-ms", "1000",
        "--flush-ms", "20",
        *extra,
    ]  # fmt: skip


def wait_for(check: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 1.0) -> float:
    """Poll ``check`` until it is true; return the seconds it took, or fail naming ``what``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if check():
            return time.monotonic() - started
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
