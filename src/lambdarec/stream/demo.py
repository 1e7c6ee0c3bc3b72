"""Demo stages of the speed layer: start it, then watch session features change online."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from lambdarec import names
from lambdarec.settings import Settings


def start_speed_layer(settings: Settings, bootstrap_servers: str, *, sessions_only: bool = False) -> list[Any]:
    """Apply the project's Feast definitions, then start the job and the pusher (if not running).

    Returns:
        The status of both services.
    """
    from lambdarec.featurestore.store import apply
    from lambdarec.runtime.supervisor import Supervisor
    from lambdarec.stream.commands import stream_services

    apply(settings)
    job_args = ["--sessions-only"] if sessions_only else []
    return Supervisor(settings, stream_services(settings, bootstrap_servers, job_args=job_args)).up()


def watch_session_features(
    read: Callable[[list[str]], dict[str, dict[str, Any]]],
    session_ids: Sequence[str],
    *,
    seconds: float = 30.0,
    interval_s: float = 1.0,
    on_change: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, list[int]]:
    """Poll the online store and report each session's features whenever they change.

    Args:
        read: Reads online features of session ids (e.g. ``online_session_features`` bound to a store).
        session_ids: Sessions to watch (e.g. of the dataset being replayed).
        seconds: How long to watch.
        interval_s: Poll interval.
        on_change: Called with (session id, features) on each change (e.g. print a line).

    Returns:
        Each session's successive ``session_event_count`` values, as observed.
    """
    seen: dict[str, list[int]] = {sid: [] for sid in session_ids}
    deadline = time.monotonic() + seconds
    while True:
        for sid, features in read(list(session_ids)).items():
            count = features.get(names.SESSION_EVENT_COUNT)
            if count is not None and (not seen[sid] or seen[sid][-1] != count):
                seen[sid].append(int(count))
                if on_change is not None:
                    on_change(sid, features)
        if time.monotonic() >= deadline:
            return seen
        time.sleep(interval_s)
