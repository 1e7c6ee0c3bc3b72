"""The pusher's three feeds: byte-identical online writes, upsert-kafka tombstones, newest rows, metrics per topic."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

pytest.importorskip("feast")

from lambdarec import names  # noqa: E402
from lambdarec.stream.metrics import FreshnessMetrics, prometheus_text  # noqa: E402
from lambdarec.stream.pusher import (  # noqa: E402
    FEEDS,
    FeaturePusher,
    FeedWriter,
    available_feeds,
    newest_per_key,
    push_frame,
)

BASE_MS = 1_709_600_000_000


def session_row(sid: str, n: int, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        names.SESSION_ID: sid,
        names.SESSION_RECENT_ITEMS: [f"i{k}" for k in range(n % 4)],  # [] for n % 4 == 0
        names.SESSION_EVENT_COUNT: n,
        names.SESSION_VIEW_COUNT: n - 1 if n else 0,
        names.SESSION_CART_COUNT: 1,
        names.SESSION_PURCHASE_COUNT: 0,
        names.SESSION_DISTINCT_CATEGORIES: 2,
        names.SESSION_START_MS: BASE_MS,
        names.SESSION_LAST_EVENT_MS: BASE_MS + n * 1_000,
        names.SESSION_DWELL_S: n * 1.5 if n % 3 else n,  # JSON ints in the DOUBLE column too
        "source_event_ms": BASE_MS + n * 1_000,
        "emitted_ms": BASE_MS + n * 1_000 + 7,
        "late": n == 5,
        "late_events": 0,
    }
    row.update(extra)
    return row


def user_row(uid: str, n: int) -> dict[str, Any]:
    return {
        names.USER_ID: uid,
        names.USER_RECENT_ITEMS: [f"i{k}" for k in range(n)],
        "source_event_ms": BASE_MS + n,
        "emitted_ms": BASE_MS + n + 3,
    }


def item_row(iid: str, window: int, count: int | None) -> dict[str, Any]:
    return {
        names.ITEM_ID: iid,
        names.ITEM_TRENDING_COUNT: count,
        names.ITEM_TRENDING_WINDOW_END_MS: BASE_MS + window * 60_000,
        "source_event_ms": BASE_MS + window * 60_000 - 5,
        "emitted_ms": BASE_MS + window * 60_000 + 9,
    }


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The project's Feast repo applied to a private SQLite online store."""
    from lambdarec.featurestore.store import apply, open_store
    from lambdarec.settings import load_settings

    settings = load_settings("local", state_dir=tmp_path_factory.mktemp("pusher-feast"))
    apply(settings)
    return open_store(settings)


def table_rows(store: Any, view: str) -> list[tuple[Any, ...]]:
    path = Path(store.config.online_store.path)
    with sqlite3.connect(path) as conn:
        return conn.execute(f'SELECT * FROM "{store.project}_{view}" ORDER BY entity_key, feature_name').fetchall()


def clear(store: Any, view: str) -> None:
    with sqlite3.connect(Path(store.config.online_store.path)) as conn:
        conn.execute(f'DELETE FROM "{store.project}_{view}"')


CASES = {
    "session": [session_row("s-1", 3), session_row("s-2", 4), session_row("sé#2", 6), session_row("s-4", 0)]
    + [session_row("s-5", 7, **{names.SESSION_DWELL_S: None, names.SESSION_RECENT_ITEMS: None})],
    "user": [user_row("u1", 3), user_row("u2", 0), user_row("u-ü", 20)],
    "item": [item_row("i1", 1, 4), item_row("i2", 2, 0), item_row("i3", 3, None), item_row("i4", 3, 2**40)],
}


@pytest.mark.parametrize("direct_sqlite", [True, False], ids=["executemany", "online_write_batch"])
@pytest.mark.parametrize("kind", sorted(CASES))
def test_the_proto_path_writes_the_bytes_store_push_writes(store: Any, kind: str, direct_sqlite: bool) -> None:
    feed = FEEDS[kind]
    rows = CASES[kind]
    clear(store, feed.feature_view)
    assert push_frame(store, feed, rows) == len(rows)  # Feast's DataFrame path: store.push
    through_push = table_rows(store, feed.feature_view)
    # One online row per entity and feature, None values included (stored as an empty value).
    cells = [(entity_key, feature) for entity_key, feature, *_ in through_push]
    assert len(cells) == len(set(cells)) == len(rows) * len(feed.features)
    assert {feature for _, feature in cells} == set(feed.features)
    assert len({entity_key for entity_key, _ in cells}) == len(rows)
    clear(store, feed.feature_view)
    writer = FeedWriter(store, feed)
    assert writer._writer is not None, "the proto path is used"
    # The direct upsert into Feast's SQLite tables, and Feast's own online_write_batch.
    assert (writer._writer._sqlite_tables is not None) is True
    if not direct_sqlite:
        writer._writer._sqlite_tables = None
    assert writer.write(rows) == len(rows)
    assert table_rows(store, feed.feature_view) == through_push
    # A second write of newer values updates every cell in place, as store.push does.
    newer = [{**row, feed.event_time: row[feed.event_time] + 3_600_000} for row in rows]
    clear(store, feed.feature_view)
    push_frame(store, feed, rows)
    push_frame(store, feed, newer)
    twice_through_push = table_rows(store, feed.feature_view)
    clear(store, feed.feature_view)
    writer.write(rows)
    writer.write(newer)
    assert table_rows(store, feed.feature_view) == twice_through_push != through_push


class Message:
    """What the pusher reads of a confluent_kafka.Message."""

    def __init__(self, topic: str, value: bytes | None, key: bytes | None = None) -> None:
        self._topic, self._value, self._key = topic, value, key

    def topic(self) -> str:
        return self._topic

    def value(self) -> bytes | None:
        return self._value

    def key(self) -> bytes | None:
        return self._key

    def error(self) -> None:
        return None


class FakeConsumer:
    """Hands out prepared batches; records commits."""

    def __init__(self, batches: list[list[Message]]) -> None:
        self.batches: Iterator[list[Message]] = iter(batches)
        self.commits = 0

    def consume(self, n: int, timeout: float) -> list[Message]:
        return next(self.batches, [])

    def commit(self, asynchronous: bool = False) -> None:
        self.commits += 1

    def close(self) -> None:
        pass


def record(topic: str, row: dict[str, Any], key_field: str) -> Message:
    return Message(topic, orjson.dumps(row), str(row[key_field]).encode())


def test_pusher_consumes_three_topics_skips_tombstones_and_keeps_the_newest(store: Any, tmp_path: Path) -> None:
    from lambdarec.stream.feast_local import online_session_features

    topics = {"session": "t.session", "user": "t.user", "item": "t.item"}
    first = [
        record("t.session", session_row("p-1", 2), names.SESSION_ID),
        record("t.session", session_row("p-1", 5), names.SESSION_ID),  # newer snapshot, same batch
        record("t.session", session_row("p-1", 4), names.SESSION_ID),
        Message("t.session", None, b"p-gone"),  # upsert-kafka tombstone
        Message("t.session", b"not json", b"p-x"),
        record("t.user", user_row("pu", 2), names.USER_ID),
        Message("t.user", None, b"pu-gone"),
        record("t.item", item_row("pi", 2, 9), names.ITEM_ID),
        record("t.item", item_row("pi", 1, 3), names.ITEM_ID),  # older window
    ]
    keyless = session_row("p-2", 3)
    del keyless[names.SESSION_ID]
    second = [
        record("t.session", session_row("p-1", 3), names.SESSION_ID),  # replay of an older snapshot
        Message("t.session", orjson.dumps(keyless), b"p-2"),  # the key only in the record key
    ]
    consumer = FakeConsumer([first, second])
    pusher = FeaturePusher("-", store, tmp_path / "metrics.json", topics=topics, consumer=consumer)
    assert pusher.step() == 3
    assert pusher.step() == 1
    assert consumer.commits == 2
    online = online_session_features(store, ["p-1", "p-2"])
    assert online["p-1"][names.SESSION_EVENT_COUNT] == 5 and online["p-2"][names.SESSION_EVENT_COUNT] == 3
    values = store.get_online_features(
        features=[
            f"{names.USER_STREAM_FEATURE_VIEW}:{names.USER_RECENT_ITEMS}",
            f"{names.ITEM_STREAM_FEATURE_VIEW}:{names.ITEM_TRENDING_COUNT}",
        ],
        entity_rows=[{names.USER_ID: "pu", names.ITEM_ID: "pi"}],
    ).to_dict()
    assert values[names.USER_RECENT_ITEMS] == [["i0", "i1"]] and values[names.ITEM_TRENDING_COUNT] == [9]

    pusher.metrics.write(tmp_path / "metrics.json")
    summary = json.loads((tmp_path / "metrics.json").read_text())
    by_topic = summary["topics"]
    assert by_topic["t.session"]["tombstones"] == 1 and by_topic["t.session"]["undecodable"] == 1
    assert by_topic["t.session"]["skipped_stale"] == 1 and by_topic["t.session"]["late_updates"] == 1
    assert by_topic["t.user"]["tombstones"] == 1 and by_topic["t.user"]["updates"] == 1
    assert by_topic["t.item"]["updates"] == 2 and by_topic["t.item"]["undecodable"] == 0
    assert summary["tombstones"] == 2 and summary["updates"] == 8
    assert summary["lag_p99_ms"] is not None
    prom = (tmp_path / "metrics.prom").read_text()
    assert 'lambdarec_stream_tombstones_total{topic="t.session"} 1' in prom
    assert 'lambdarec_stream_freshness_ms{topic="t.item",quantile="0.5"}' in prom
    assert 'lambdarec_stream_freshness_ms{quantile="0.99"}' in prom


def test_feeds_rank_and_availability(store: Any) -> None:
    assert newest_per_key(FEEDS["item"], [item_row("x", 3, 1), item_row("x", 5, 0), item_row("x", 4, 9)]) == {
        "x": item_row("x", 5, 0)
    }
    assert newest_per_key(FEEDS["user"], [user_row("u", 4), user_row("u", 2)])["u"] == user_row("u", 4)
    assert available_feeds(store, ["session", "user", "item"]) == ["session", "user", "item"]

    class Bare:
        def list_data_sources(self) -> list[Any]:
            raise RuntimeError("no registry yet")

    assert available_feeds(Bare(), ["session", "user", "item"]) == ["session"]


def test_metrics_without_topics_keep_the_single_tracker_format() -> None:
    metrics = FreshnessMetrics()
    metrics.record("a", 1_000, 1_050)
    summary = metrics.summary()
    assert summary["updates"] == 1 and summary["topics"]["a"]["lag_p50_ms"] == 50
    empty = FreshnessMetrics()
    empty.topic("quiet")
    assert "lag_p99_ms" not in empty.summary()["topics"]["quiet"]
    assert "lambdarec_stream_updates_total 1" in prometheus_text(summary)


def test_to_protos_builds_feasts_messages() -> None:
    from feast.type_map import python_values_to_proto_values
    from feast.value_type import ValueType

    from lambdarec.featurestore.push import to_protos

    cases = [
        ([1, None, 2**62, -5], ValueType.INT64),
        ([1.5, None, float("nan"), float("inf"), 3], ValueType.DOUBLE),
        ([0, 0.0, -0.0], ValueType.DOUBLE),
        (["a", None, "", "é"], ValueType.STRING),
        ([["a", "b"], [], None, ["", "é"]], ValueType.STRING_LIST),
        ([["a", None]], ValueType.STRING_LIST),  # Feast's own path: None elements become ""
        ([True, None], ValueType.BOOL),
        ([2**64], ValueType.DOUBLE),
    ]
    for values, value_type in cases:
        mine = [p.SerializeToString() for p in to_protos(values, value_type)]
        feasts = [p.SerializeToString() for p in python_values_to_proto_values(list(values), value_type)]
        assert mine == feasts, (values, value_type)


def test_cells_are_feasts_bytes_and_text_also_when_remembered() -> None:
    from feast.infra.online_stores.helpers import extract_text_and_num
    from feast.type_map import python_values_to_proto_values
    from feast.value_type import ValueType

    from lambdarec.featurestore.push import _cells

    cases = [
        ([1, None, 2**62, -5, 0, 1], ValueType.INT64),
        ([1, 2.5], ValueType.INT64),  # a column to_protos hands to Feast's converter whole
        ([0.0, -0.0, 0, -0.0, 0.0, float("nan"), float("inf"), 3, 3.0, None], ValueType.DOUBLE),
        (["a", None, "", "é", "a"], ValueType.STRING),
        ([["a", "b"], [], None, ["", "é"]], ValueType.STRING_LIST),
        ([True, None, False], ValueType.BOOL),
    ]
    for values, value_type in cases:
        feasts = [
            (p.SerializeToString(), extract_text_and_num(p, False)[0])
            for p in python_values_to_proto_values(list(values), value_type)
        ]
        assert _cells(values, value_type) == feasts, (values, value_type)
        assert _cells(values, value_type) == feasts, ("remembered", values, value_type)
        assert _cells(list(reversed(values)), value_type) == feasts[::-1], ("reversed", values, value_type)


class QueueConsumer:
    """Kafka's ``consume(n, timeout)`` over a queue: up to ``n`` waiting records; each group of
    ``arriving`` records lands in the queue at a blocking call (timeout > 0) made while none wait."""

    def __init__(self, waiting: list[Message], arriving: list[list[Message]]) -> None:
        self.waiting, self.arriving = list(waiting), list(arriving)
        self.calls: list[tuple[int, float]] = []

    def consume(self, n: int, timeout: float) -> list[Message]:
        self.calls.append((n, timeout))
        if not self.waiting and timeout > 0 and self.arriving:
            self.waiting += self.arriving.pop(0)
        taken, self.waiting = self.waiting[:n], self.waiting[n:]
        return taken

    def commit(self, asynchronous: bool = False) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_step_takes_what_has_arrived_and_never_waits_to_fill_a_batch(store: Any, tmp_path: Path) -> None:
    rows = [record("t.session", session_row(f"q-{i}", 1), names.SESSION_ID) for i in range(5)]
    consumer = QueueConsumer(waiting=rows[:3], arriving=[rows[3:]])
    pusher = FeaturePusher(
        "-", store, tmp_path / "m.json", topics={"session": "t.session"}, consumer=consumer, max_batch=100
    )
    assert pusher.step(timeout_s=0.5) == 3  # the three waiting, without blocking
    assert consumer.calls == [(100, 0)]
    consumer.calls.clear()
    # Nothing waiting: block for the first record only, then take the one that came with it.
    assert pusher.step(timeout_s=0.5) == 2
    assert consumer.calls == [(100, 0), (1, 0.5), (99, 0)]
    consumer.calls.clear()
    assert pusher.step(timeout_s=0.5) == 0  # nothing arrives: one blocking call, no drain
    assert consumer.calls == [(100, 0), (1, 0.5)]
