"""Finding the broker and creating topics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lambdarec.settings import Settings


def kafka_bootstrap(settings: Settings) -> str:
    """The bootstrap servers: from settings, else the embedded broker's recorded port.

    Raises:
        ServiceNotRunningError: Nothing is configured and the embedded broker is not up.
    """
    from lambdarec.runtime.kafka import KafkaService
    from lambdarec.runtime.supervisor import resolve_endpoint

    return resolve_endpoint(
        settings, settings.kafka.bootstrap_servers, KafkaService(settings), "LAMBDAREC_KAFKA__BOOTSTRAP_SERVERS"
    )


def ensure_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    timeout_s: float = 30.0,
    configs: Mapping[str, Mapping[str, str]] | None = None,
    replication_factor: int = 1,
    min_insync_replicas: int | None = None,
) -> list[str]:
    """Create the topics that do not exist yet (idempotent).

    Args:
        bootstrap: Broker address.
        topics: Topic name → partition count.
        timeout_s: How long to wait for the broker.
        configs: Topic name → topic configs (``retention.ms``...) for the topics created now.
        replication_factor: Replicas of each topic created now (``kafka.replication_factor``).
        min_insync_replicas: ``min.insync.replicas`` of each topic created now; None keeps the broker's.

    Returns:
        The names of the topics that were created now.

    Raises:
        RuntimeServiceError: The cluster has fewer brokers than ``replication_factor`` (the message
            names the setting), instead of topics that could never be fully replicated.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    metadata = admin.list_topics(timeout=timeout_s)
    existing = set(metadata.topics)
    extra = {"min.insync.replicas": str(min_insync_replicas)} if min_insync_replicas is not None else {}
    missing = [
        NewTopic(
            name,
            num_partitions=parts,
            replication_factor=replication_factor,
            config={**extra, **dict((configs or {}).get(name, {}))},
        )
        for name, parts in topics.items()
        if name not in existing
    ]
    if missing and len(metadata.brokers) < replication_factor:
        from lambdarec.runtime.errors import RuntimeServiceError

        raise RuntimeServiceError(
            f"kafka.replication_factor is {replication_factor} but the cluster at {bootstrap} has "
            f"{len(metadata.brokers)} broker(s) up: lower LAMBDAREC_KAFKA__REPLICATION_FACTOR or start more "
            "brokers (kafka.brokers; `lambdarec --profile cluster services up` runs 3)"
        )
    if not missing:
        return []
    created = []
    for name, future in admin.create_topics(missing, request_timeout=timeout_s).items():
        try:
            future.result(timeout=timeout_s)
            created.append(name)
        except KafkaException as err:
            # Another client may have created it in the meantime; that is the goal anyway.
            if "TOPIC_ALREADY_EXISTS" not in str(err):
                raise
    return created


def topic_size(bootstrap: str, topic: str, timeout_s: float = 10.0) -> int:
    """Messages currently held by a topic (sum over partitions of high - low watermark)."""
    import time

    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"size-{time.time_ns()}"})
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s)
        if topic not in metadata.topics or metadata.topics[topic].error is not None:
            return 0
        total = 0
        for partition in metadata.topics[topic].partitions:
            low, high = partition_watermarks(consumer, TopicPartition(topic, partition), timeout_s)
            total += high - low
        return total
    finally:
        consumer.close()


def partition_watermarks(consumer: Any, partition: Any, timeout_s: float = 30.0) -> tuple[int, int]:
    """Low/high watermarks of one partition, retrying while its leader is being (re)elected.

    Args:
        consumer: A ``confluent_kafka.Consumer``.
        partition: A ``confluent_kafka.TopicPartition``.
        timeout_s: Give up (re-raise) after this long.
    """
    import time

    from confluent_kafka import KafkaException

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            low, high = consumer.get_watermark_offsets(partition, timeout=10)
            return int(low), int(high)
        except KafkaException as err:
            if not err.args[0].retriable() or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
