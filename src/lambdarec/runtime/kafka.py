"""The embedded Kafka: KRaft combined mode (broker + controller) from Maven jars.

One broker by default (``kafka.brokers = 1``). With ``kafka.brokers = N`` (the cluster profile,
``lambdarec --profile cluster services up``) it is N processes, ``kafka``, ``kafka-2`` ... ``kafka-N``,
each a broker and a voter of one static controller quorum, with its own ports and log dirs under
``<state>/services/<name>/``; they are started together (:attr:`ManagedService.start_group`), and the
``kafka`` service's endpoint is the bootstrap list of all of them.
"""

from __future__ import annotations

import base64
import json
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
from lambdarec.runtime.errors import PrerequisiteError, RuntimeServiceError
from lambdarec.runtime.exposure import advertised_host
from lambdarec.runtime.jvm import classpath, java_executable
from lambdarec.runtime.service import ManagedService, ServiceRecord
from lambdarec.runtime.topology import KAFKA
from lambdarec.settings import Settings

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


CLUSTER_FILE = "cluster.json"
"""Under the ``kafka`` service's home: the cluster id every node was formatted with, and how many nodes."""


def broker_name(node_id: int) -> str:
    """The service name of one broker: ``kafka`` for node 1, ``kafka-<n>`` for the others."""
    return KAFKA_SERVICE if node_id == 1 else f"{KAFKA_SERVICE}-{node_id}"


def kafka_services(settings: Settings) -> list[KafkaService]:
    """The broker services of ``settings.kafka.brokers`` nodes, node 1 (``kafka``) first."""
    return [KafkaService(settings, node_id) for node_id in range(1, settings.kafka.brokers + 1)]


class KafkaService(ManagedService):
    """One node of a Kafka 4.x cluster in KRaft combined mode (the whole cluster when it has one node).

    Args:
        settings: The environment; ``settings.kafka.brokers`` says how many nodes the cluster has.
        node_id: This node's ``node.id`` (1 .. ``kafka.brokers``).
    """

    name = KAFKA_SERVICE
    port_names = KAFKA.port_names  # ("port", "controller_port")
    startup_timeout_s = 120.0

    def __init__(self, settings: Settings, node_id: int = 1) -> None:
        if not 1 <= node_id <= settings.kafka.brokers:
            raise ValueError(f"node_id {node_id} outside 1..kafka.brokers ({settings.kafka.brokers})")
        self.node_id = node_id
        self.name = broker_name(node_id)
        super().__init__(settings)
        if self.clustered:
            self.start_group = KAFKA_SERVICE

    @property
    def clustered(self) -> bool:
        """True when the cluster has more than one node."""
        return self.settings.kafka.brokers > 1

    def _peer_home(self, node_id: int) -> Path:
        return self.home.parent / broker_name(node_id)

    def peer_ports(self) -> dict[int, Mapping[str, int]]:
        """Every node's ports (this one's included) as the supervisor chose them (their ``ports.json``)."""
        found: dict[int, Mapping[str, int]] = {}
        for node_id in range(1, self.settings.kafka.brokers + 1):
            record = ServiceRecord.load(self._peer_home(node_id) / "ports.json")
            if record is not None:
                found[node_id] = record.ports
        return found

    def configured_ports(self) -> Mapping[str, int]:
        """Ports pinned in settings (0 = pick a free one); the other nodes of a cluster always pick."""
        if self.node_id != 1:
            return {}
        return {"port": self.settings.kafka.port, "controller_port": self.settings.kafka.controller_port}

    def check_settings(self) -> None:
        """Refuse settings the cluster cannot honour, naming them (before anything starts or hangs).

        Raises:
            PrerequisiteError: ``kafka.replication_factor`` above ``kafka.brokers``, or
                ``kafka.min_insync_replicas`` above ``kafka.replication_factor``.
        """
        kafka = self.settings.kafka
        if kafka.replication_factor > kafka.brokers:
            raise PrerequisiteError(
                f"kafka.replication_factor is {kafka.replication_factor} but the embedded cluster has "
                f"kafka.brokers = {kafka.brokers}: a topic cannot have more replicas than brokers. Lower "
                "LAMBDAREC_KAFKA__REPLICATION_FACTOR or raise LAMBDAREC_KAFKA__BROKERS (`--profile cluster` sets 3)."
            )
        if kafka.min_insync_replicas > kafka.replication_factor:
            raise PrerequisiteError(
                f"kafka.min_insync_replicas is {kafka.min_insync_replicas} but kafka.replication_factor is "
                f"{kafka.replication_factor}: no write could ever be acknowledged (acks=all). Lower "
                "LAMBDAREC_KAFKA__MIN_INSYNC_REPLICAS."
            )

    def check_prerequisites(self) -> None:
        """Fail fast, naming the fix, on impossible settings or when the JDK or the broker jars are missing."""
        self.check_settings()
        java_executable()
        classpath(self.settings.resolved_jars_dir(), "kafka")

    @property
    def config_path(self) -> Path:
        """The generated ``server.properties``."""
        return self.home / "server.properties"

    def server_properties(self, ports: Mapping[str, int]) -> str:
        """The broker configuration for the given ports (a cluster node's also needs its peers' ports)."""
        port, controller = ports["port"], ports["controller_port"]
        # Loopback unless settings.listen_host opens the client listener; the controller listener
        # stays on loopback whatever the setting says (the quorum's nodes all run on this machine).
        host = self.settings.listen_host
        lines = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": self._voters(controller),
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
        if self.clustered:
            kafka = self.settings.kafka
            internal_rf = str(min(3, kafka.brokers))
            internal_isr = str(min(2, kafka.brokers))
            lines |= {
                # Internal topics (consumer offsets, transactions) survive a broker loss too.
                "offsets.topic.replication.factor": internal_rf,
                "transaction.state.log.replication.factor": internal_rf,
                "transaction.state.log.min.isr": internal_isr,
                "share.coordinator.state.topic.replication.factor": internal_rf,
                "share.coordinator.state.topic.min.isr": internal_isr,
                # Topics auto-created by a client get the same guarantees as those ensure_topics creates.
                "default.replication.factor": str(kafka.replication_factor),
                "min.insync.replicas": str(kafka.min_insync_replicas),
                "unclean.leader.election.enable": "false",
            }
        return "".join(f"{key}={value}\n" for key, value in lines.items())

    def _voters(self, controller: int) -> str:
        if not self.clustered:
            return f"1@127.0.0.1:{controller}"
        peers = self.peer_ports()
        missing = [broker_name(n) for n in range(1, self.settings.kafka.brokers + 1) if n not in peers]
        if missing:
            raise RuntimeServiceError(
                f"{self.name}: no ports chosen yet for {missing}; start the brokers together "
                "(`lambdarec --profile cluster services up kafka`)"
            )
        return ",".join(f"{n}@127.0.0.1:{peers[n]['controller_port']}" for n in sorted(peers))

    def _cluster_file(self) -> Path:
        return self._peer_home(1) / CLUSTER_FILE

    def _cluster_id(self) -> str:
        """The id every node of this cluster is formatted with (node 1's file; made on the first format)."""
        path = self._cluster_file()
        try:
            stored = json.loads(path.read_text())
            if stored.get("brokers") == self.settings.kafka.brokers:
                return str(stored["cluster_id"])
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            pass
        cluster_id = new_cluster_id()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"cluster_id": cluster_id, "brokers": self.settings.kafka.brokers}))
        return cluster_id

    def _check_formatted_size(self) -> None:
        """A node's storage belongs to a cluster of a given size; starting it with another fails here, named."""
        try:
            stored = json.loads(self._cluster_file().read_text()).get("brokers", 1)
        except (FileNotFoundError, json.JSONDecodeError):
            stored = 1  # formatted before clusters existed: one node
        if stored != self.settings.kafka.brokers:
            raise RuntimeServiceError(
                f"{self.name}: its storage under {self.data_dir} was formatted for a cluster of {stored} "
                f"broker(s) but kafka.brokers is {self.settings.kafka.brokers}. Use the same profile as when it "
                "was made (`--profile cluster` for 3), or another --state-dir, or delete the folder to start afresh."
            )

    def prepare(self, ports: Mapping[str, int]) -> None:
        """Write the configuration; format the storage on first start only."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.server_properties(ports))
        (self.home / "log4j2.properties").write_text(_LOG4J2)
        if (self.data_dir / "meta.properties").exists():
            self._check_formatted_size()
            return  # formatted before: the restart reuses the data
        import subprocess

        cluster_id = self._cluster_id() if self.clustered else new_cluster_id()
        result = subprocess.run(
            [
                *self._java_prefix(),
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={cluster_id}",
                f"--config={self.config_path}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
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
        """The bootstrap servers string: this node's address; for node 1 of a cluster, every node's."""
        if self.clustered and self.node_id == 1:
            peers = {**self.peer_ports(), 1: ports}
            return ",".join(KAFKA.address("127.0.0.1", peers[n]) for n in sorted(peers))
        return KAFKA.address("127.0.0.1", ports)

    def is_healthy(self, ports: Mapping[str, int]) -> bool:
        """True when the broker answers a metadata request and every partition is led.

        In a cluster, node 1 (``kafka``) stands for the whole: healthy when every broker is
        registered and every partition has its full set of in-sync replicas; the other nodes
        when they are registered and in sync on every partition they replicate.
        """
        from confluent_kafka.admin import AdminClient

        from lambdarec.runtime.service import tcp_answers

        if not tcp_answers(ports["port"]):
            return False
        # log_level 0 keeps librdkafka from printing connection retries into the CLI.
        own = KAFKA.address("127.0.0.1", ports)
        admin = AdminClient({"bootstrap.servers": own, "socket.timeout.ms": 2000, "log_level": 0})
        metadata = admin.list_topics(timeout=2)
        if not metadata.brokers:
            return False
        if self.clustered:
            if self.node_id not in metadata.brokers:
                return False
            if self.node_id != 1:
                # Caught up: in the in-sync set of every partition it replicates (a restarted node
                # answers long before it has fetched what it missed).
                return all(
                    self.node_id in p.isrs
                    for topic in metadata.topics.values()
                    for p in topic.partitions.values()
                    if self.node_id in p.replicas
                )
            if len(metadata.brokers) < self.settings.kafka.brokers:
                return False
            return all(
                topic.error is None
                and all(
                    p.leader >= 0 and p.error is None and set(p.isrs) == set(p.replicas)
                    for p in topic.partitions.values()
                )
                for topic in metadata.topics.values()
            )
        # After a restart the broker answers metadata before it leads its partitions again;
        # clients that arrive then get NOT_LEADER errors, so healthy means every partition is led.
        return all(
            topic.error is None and all(p.leader >= 0 and p.error is None for p in topic.partitions.values())
            for topic in metadata.topics.values()
        )

    def after_healthy(self, ports: Mapping[str, int]) -> None:
        """Create the pipeline's topics if they do not exist yet (node 1 does it for a cluster)."""
        from lambdarec.events.admin import ensure_topics

        if self.node_id != 1:
            return
        kafka = self.settings.kafka
        ensure_topics(
            self.endpoint(ports),
            {name: parts or kafka.partitions for name, parts in CORE_TOPICS.items()},
            configs=TOPIC_CONFIGS,
            replication_factor=kafka.replication_factor,
            min_insync_replicas=kafka.min_insync_replicas if kafka.replication_factor > 1 else None,
        )
