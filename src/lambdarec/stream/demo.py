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


def live_session_events(n_sessions: int, per_session: int, start_ms: int, seconds: float, seed: int = 11) -> list[dict]:
    """Events of a few "live" shoppers, spread over ``seconds`` from ``start_ms`` (sorted by time).

    Each session browses (views), now and then adds to cart, and may buy at the end — enough
    for every session feature to move while the demo watches.
    """
    import random

    rng = random.Random(seed)
    events = []
    step_ms = int(seconds * 1000 / max(per_session, 1))
    for s in range(n_sessions):
        session = f"live-{start_ms}-{s}"
        for i in range(per_session):
            kind = "purchase" if i == per_session - 1 and s % 2 == 0 else ("cart" if i % 4 == 3 else "view")
            events.append(
                {
                    "event_id": f"{session}-{i}",
                    "event_time": start_ms + i * step_ms + rng.randint(0, step_ms // 2),
                    "session_id": session,
                    "user_id": f"live-user-{s}",
                    "item_id": f"item-{rng.randint(1, 500)}",
                    "event_type": kind,
                    "price": round(rng.uniform(5, 200), 2),
                    "category": rng.choice(["electronics.audio", "apparel.shoes", "home.kitchen"]),
                }
            )
    return sorted(events, key=lambda e: e["event_time"])


def run_live_sessions(
    settings: Settings,
    bootstrap_servers: str,
    *,
    console: Any = None,
    n_sessions: int = 3,
    per_session: int = 8,
    seconds: float = 12.0,
) -> dict[str, Any]:
    """Publish a few shoppers' events in real time and show their online features changing.

    Events go through the validating publisher into ``clicks``; the speed layer folds them and the
    pusher writes the project's Feast online store, which is polled twice a second.

    Returns:
        Per session: the events published, the successive event counts seen online, and the
        freshness of each change (seconds from the newest event to the moment the poll saw it).
    """
    import threading

    from lambdarec.events.producer import EventPublisher
    from lambdarec.stream.feast_local import online_session_features
    from lambdarec.stream.pusher import open_store

    store = open_store(env=settings.env, state_dir=settings.state_dir)
    start_ms = int(time.time() * 1000)
    events = live_session_events(n_sessions, per_session, start_ms, seconds)
    session_ids = sorted({e["session_id"] for e in events})
    seen_ms: dict[str, list[float]] = {sid: [] for sid in session_ids}

    def publish() -> None:
        with EventPublisher(bootstrap_servers) as publisher:
            for event in events:
                delay = event["event_time"] / 1000 - time.time()
                if delay > 0:
                    time.sleep(delay)
                publisher.publish(event, origin={"demo": "live session"})
                publisher.flush()

    def show(sid: str, features: dict[str, Any]) -> None:
        lag_s = time.time() - (features.get(names.SESSION_LAST_EVENT_MS) or 0) / 1000
        seen_ms[sid].append(round(lag_s, 2))
        if console is not None:
            items = features.get(names.SESSION_RECENT_ITEMS) or []
            console.print(
                f"  {sid}: {features.get(names.SESSION_EVENT_COUNT)} events "
                f"(views {features.get(names.SESSION_VIEW_COUNT)}, carts {features.get(names.SESSION_CART_COUNT)}, "
                f"purchases {features.get(names.SESSION_PURCHASE_COUNT)}), last items {items[-3:]}, "
                f"dwell {features.get(names.SESSION_DWELL_S)} s — newest event {lag_s:.2f} s old"
            )

    feeder = threading.Thread(target=publish, daemon=True)
    feeder.start()
    counts = watch_session_features(
        lambda ids: online_session_features(store, ids),
        session_ids,
        seconds=seconds + 4,
        interval_s=0.5,
        on_change=show,
    )
    feeder.join(10)
    published = {sid: sum(e["session_id"] == sid for e in events) for sid in session_ids}
    return {
        sid: {"published": published[sid], "event_counts_seen": counts[sid], "seconds_old_when_seen": seen_ms[sid]}
        for sid in session_ids
    }
