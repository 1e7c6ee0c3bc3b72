"""The embedded Kafka broker: KRaft combined mode (broker + controller) from Maven jars."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from pathlib import Path

from lambdarec.names import (
    CLICKS_DLQ_TOPIC,
    CLICKS_TOPIC,
    ITEM_FEATURES_TOPIC,
    KAFKA_SERVICE,
    SERVED_FEATURES_TOPIC,
    SESSION_FEATURES_TOPIC,
    USER_FEATURES_TOPIC,
)
from lambdarec.runtime.exposure import advertised_host
from lambdarec.runtime.jvm import classpath, java_executable
from lambdarec.runtime.service import ManagedService
from lambdarec.runtime.topology import KAFKA

_LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
logger.requests.name = kafka.request.logger
logger.requests.level = WARN
"""

# Topics the pipeline needs; created with these partition counts on first start.
# The DLQ gets one partition: it is low volume and read in order by humans.
CORE_TOPICS: dict[str, int | None] = {
    CLICKS_TOPIC: None,
    CLICKS_DLQ_TOPIC: 1,
    SESSION_FEATURES_TOPIC: None,
    USER_FEATURES_TOPIC: None,
    ITEM_FEATURES_TOPIC: None,
    SERVED_FEATURES_TOPIC: 1,
}
# A sampled log read by day: a week of it, at most 256 MiB, is all drift_monitor needs.
TOPIC_CONFIGS: dict[str, dict[str, str]] = {
    SERVED_FEATURES_TOPIC: {"retention.ms": str(7 * 86_400_000), "retention.bytes": str(256 * 1024 * 1024)},
}


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes in URL-safe base64 without padding.

    Like Kafka's own ``Uuid.randomUuid``, never one that starts with '-': command-line
    parsers would read it as an option (StorageTool did, once in 64 starts).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class KafkaService(ManagedService):
    """A single-node Kafka 4.x cluster in KRaft combined mode."""

    name = KAFKA_SERVICE
    port_names = KAFKA.port_names  # ("port", "controller_port")
    startup_timeout_s = 120.0

    def configured_ports(self) -> Mapping[str, int]:
        """Ports pinned in settings (0 = pick a free one)."""
        return {"port": self.settings.kafka.port, "controller_port": self.settings.kafka.controller_port}

    def check_prerequisites(self) -> None:
        """Fail fast, naming the fix, when the JDK or the broker jars are missing."""
        java_executable()
        classpath(self.settings.resolved_jars_dir(), "kafka")

    @property
    def config_path(self) -> Path:
        """The generated ``server.properties``."""
        return self.home / "server.properties"

    def server_properties(self, ports: Mapping[str, int]) -> str:
        """The broker configuration for the given ports."""
        port, controller = ports["port"], ports["controller_port"]
        # Loopback unless settings.listen_host opens the client listener; the controller serves this
        # one broker only and stays on loopback whatever the setting says.
        host = self.settings.listen_host
        lines = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{controller}",
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://127.0.0.1:{controller}",
            "advertised.listeners": f"PLAINTEXT://{advertised_host(host)}:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": str(self.settings.kafka.partitions),
            # One node: internal topics cannot be replicated.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            "log.retention.hours": "168",
            "log.segment.bytes": str(256 * 2**20),
            # A bad event may be up to 1 MiB; the DLQ must be able to hold it with its reason.
            "message.max.bytes": str(2 * 2**20),
        }
        return "".join(f"{key}={value}\n" for key, value in lines.items())

    def prepare(self, ports: Mapping[str, int]) -> None:
        """Write the configuration; format the storage on first start only."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.server_properties(ports))
        (self.home / "log4j2.properties").write_text(_LOG4J2)
        if (self.data_dir / "meta.properties").exists():
            return  # formatted before: the restart reuses the data
        import subprocess

        result = subprocess.run(
            [
                *self._java_prefix(),
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={new_cluster_id()}",
                f"--config={self.config_path}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            from lambdarec.runtime.errors import RuntimeServiceError

            raise RuntimeServiceError(f"formatting Kafka storage failed:\n{result.stdout}\n{result.stderr}")

    def _java_prefix(self) -> list[str]:
        return [
            java_executable(),
            f"-Xmx{self.settings.kafka.heap}",
            f"-Xms{self.settings.kafka.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-cp",
            classpath(self.settings.resolved_jars_dir(), "kafka"),
        ]

    def command(self, ports: Mapping[str, int]) -> list[str]:
        """Run ``kafka.Kafka server.properties`` in the foreground."""
        return [*self._java_prefix(), "kafka.Kafka", str(self.config_path)]

    def endpoint(self, ports: Mapping[str, int]) -> str:
        """The bootstrap servers string."""
        return KAFKA.address("127.0.0.1", ports)

    def is_healthy(self, ports: Mapping[str, int]) -> bool:
        """True when the broker answers a metadata request."""
        from confluent_kafka.admin import AdminClient

        from lambdarec.runtime.service import tcp_answers

        if not tcp_answers(ports["port"]):
            return False
        # log_level 0 keeps librdkafka from printing connection retries into the CLI.
        admin = AdminClient({"bootstrap.servers": self.endpoint(ports), "socket.timeout.ms": 2000, "log_level": 0})
        metadata = admin.list_topics(timeout=2)
        if not metadata.brokers:
            return False
        # After a restart the broker answers metadata before it leads its partitions again;
        # clients that arrive then get NOT_LEADER errors, so healthy means every partition is led.
        return all(
            topic.error is None and all(p.leader >= 0 and p.error is None for p in topic.partitions.values())
            for topic in metadata.topics.values()
        )

    def after_healthy(self, ports: Mapping[str, int]) -> None:
        """Create the pipeline's topics if they do not exist yet."""
        from lambdarec.events.admin import ensure_topics

        ensure_topics(
            self.endpoint(ports),
            {name: parts or self.settings.kafka.partitions for name, parts in CORE_TOPICS.items()},
            configs=TOPIC_CONFIGS,
        )
