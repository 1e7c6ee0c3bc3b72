"""Fixtures of the speed-layer integration tests: a private state folder, fresh topics, a producer."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from lambdarec.settings import Settings, load_settings


@pytest.fixture(scope="module")
def stream_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings with a state folder private to one test module (its job's checkpoints)."""
    return load_settings("local", state_dir=tmp_path_factory.mktemp("stream-state"))


@pytest.fixture(scope="module")
def stream_topics(kafka_bootstrap: str) -> dict[str, str]:
    """Fresh topics for one module's job, so tests never read another test's records."""
    from lambdarec.events.admin import ensure_topics

    tag = uuid.uuid4().hex[:8]
    topics = {
        "source": f"clicks-{tag}",
        "dlq": f"clicks-dlq-{tag}",
        "session": f"features-session-{tag}",
        "user": f"features-user-{tag}",
        "item": f"features-item-{tag}",
    }
    # Several partitions for the clicks and the session rows: ordering across partitions is not
    # guaranteed, which the pusher's newest-snapshot rule must handle.
    ensure_topics(
        kafka_bootstrap,
        {topics["source"]: 4, topics["dlq"]: 1, topics["session"]: 2, topics["user"]: 1, topics["item"]: 1},
    )
    return topics


@pytest.fixture(scope="module")
def produce(kafka_bootstrap: str) -> Iterator[Callable[[str, list[bytes | dict]], None]]:
    """Publish raw values (dicts as JSON keyed by session, bytes as they are) and flush."""
    import orjson
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 5, "log_level": 0})

    def send(topic: str, values: list[bytes | dict]) -> None:
        for value in values:
            if isinstance(value, dict):
                producer.produce(topic, orjson.dumps(value), key=str(value.get("session_id", "")).encode())
            else:
                producer.produce(topic, value)
        assert producer.flush(30) == 0

    yield send
    producer.flush(10)
