"""The ``local`` stack: every service of the topology as a Docker container on one network.

One :class:`DockerService` per topology service (a service may run as several containers: the
Flink JobManager, TaskManager and the one-shot job submission are ``stream-job``). Published
ports, environment variables and start order come from :mod:`lambdarec.runtime.topology`:
a container is created only after the containers of the services it depends on are healthy
(``wait`` on their health checks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_docker as docker

from components.config import StackArgs
from components.images import OwnImages, OwnImagesArgs
from components.wiring import env_list, service_env
from lambdarec import names
from lambdarec.runtime import topology

#: Where the Python containers keep the shared state (lake, Feast registry): ``LAMBDAREC_STATE_DIR``.
STATE_DIR = "/data/lambdarec"
FLINK_STATE_DIR = "/data/flink"
JOB_DIR = "/opt/lambdarec/job"


@dataclass
class ContainerSpec:
    """One container of a service.

    Attributes:
        suffix: Appended to the service name (``""`` for the main container, ``"taskmanager"``).
        image: Image reference.
        command: The container's command (None: the image's default).
        env: Variables beyond the service's topology environment.
        volumes: ``{volume key: path in the container}``.
        healthcheck: Command run by Docker (``CMD`` form); the service's dependants wait for it.
        publish: Publish the service's public ports on the host (main container only).
        one_shot: Runs once and exits (job submission): not kept running, not health-checked.
        uploads: ``{path in the container: file content}``.
        after: Suffixes of containers of the same service this one starts after.
    """

    suffix: str
    image: pulumi.Input[str]
    command: Sequence[pulumi.Input[str]] | None = None
    env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    volumes: Mapping[str, str] = field(default_factory=dict)
    healthcheck: Sequence[str] | None = None
    publish: bool = False
    one_shot: bool = False
    uploads: Mapping[str, str] = field(default_factory=dict)
    after: Sequence[str] = ()


@dataclass
class DockerServiceArgs:
    """Arguments of :class:`DockerService`.

    Attributes:
        service: The topology service it declares.
        containers: Its containers (the first one carries the service's name and ports).
        network: The Docker network's name.
        volumes: The stack's named volumes by key.
        extra_env: Platform variables (``LAMBDAREC_ENV``, secrets) for every container.
        after: The services of its ``depends_on``: every container starts after all of theirs.
    """

    service: topology.Service
    containers: Sequence[ContainerSpec]
    network: pulumi.Input[str]
    volumes: Mapping[str, docker.Volume]
    extra_env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    after: Sequence[DockerService] = ()


class DockerService(pulumi.ComponentResource):
    """One topology service as container(s) on the stack's network."""

    def __init__(self, name: str, args: DockerServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("lambdarec:local:DockerService", name, None, opts)
        spec = args.service
        self.env = service_env(spec.name, extra=args.extra_env)
        self.containers: dict[str, docker.Container] = {}
        upstream = [container for service in args.after for container in service.containers.values()]
        for c in args.containers:
            container_name = f"{spec.name}-{c.suffix}" if c.suffix else spec.name
            ports = (
                [docker.ContainerPortArgs(internal=p.number, external=p.number) for p in spec.ports if p.public]
                if c.publish
                else []
            )
            healthcheck = (
                docker.ContainerHealthcheckArgs(
                    tests=["CMD", *c.healthcheck], interval="5s", timeout="5s", retries=30, start_period="10s"
                )
                if c.healthcheck
                else None
            )
            self.containers[c.suffix] = docker.Container(
                container_name,
                name=container_name,
                image=c.image,
                command=list(c.command) if c.command is not None else None,
                envs=env_list({**self.env, **c.env}),
                ports=ports,
                networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=args.network, aliases=[container_name])],
                volumes=[
                    docker.ContainerVolumeArgs(volume_name=args.volumes[key].name, container_path=path)
                    for key, path in c.volumes.items()
                ],
                uploads=[docker.ContainerUploadArgs(file=path, content=text) for path, text in c.uploads.items()],
                healthcheck=healthcheck,
                # Create returns once the health check passes: dependants start after a healthy service.
                wait=bool(c.healthcheck),
                wait_timeout=300,
                restart="no" if c.one_shot else "unless-stopped",
                must_run=not c.one_shot,
                opts=pulumi.ResourceOptions(
                    parent=self,
                    depends_on=[*upstream, *[self.containers[s] for s in c.after if s in self.containers]],
                ),
            )
        self.main = self.containers[args.containers[0].suffix]
        self.register_outputs(
            {"containers": {k: v.name for k, v in self.containers.items()}, "ports": list(spec.port_names)}
        )


def _python_check(url: str) -> list[str]:
    """A health check for images with Python but no curl."""
    return ["python", "-c", f"import urllib.request; urllib.request.urlopen({url!r}, timeout=3)"]


def kafka_env(args: StackArgs) -> dict[str, str]:
    """The apache/kafka image's settings: one KRaft node, as the embedded broker's server.properties."""
    port, controller = topology.KAFKA.port("port").number, topology.KAFKA.port("controller_port").number
    return {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": f"1@{names.KAFKA_SERVICE}:{controller}",
        "KAFKA_LISTENERS": f"PLAINTEXT://:{port},CONTROLLER://:{controller}",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://{topology.KAFKA.address(names.KAFKA_SERVICE)}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "KAFKA_NUM_PARTITIONS": str(args.kafka.partitions),
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "true",
        "KAFKA_MESSAGE_MAX_BYTES": str(2 * 2**20),
        "KAFKA_LOG_DIRS": "/var/lib/kafka/data",
        "KAFKA_HEAP_OPTS": f"-Xmx{args.kafka.heap} -Xms{args.kafka.heap}",
    }


MILVUS_ETCD_CONFIG = """\
listen-client-urls: http://0.0.0.0:2379
advertise-client-urls: http://0.0.0.0:2379
quota-backend-bytes: 4294967296
auto-compaction-mode: revision
auto-compaction-retention: '1000'
"""


def flink_submit_command(args: StackArgs) -> list[str]:
    """``flink run`` of the packaged job against the JobManager (session cluster), detached.

    The layout is the artifact's (jobs/flink/package.py). Flink 2.2's ``run`` has no ``--jarfile``
    (the artifact's MANIFEST still names it): both jars go on the user classpath, at the same path
    on every node of this image. The job's own arguments follow ``--``.
    """
    rest = topology.STREAM_JOB.port("rest_port").number
    return [
        "flink",
        "run",
        "--jobmanager",
        f"{names.STREAM_JOB_SERVICE}:{rest}",
        "--detached",
        "--python",
        f"{JOB_DIR}/speed_layer.py",
        "--pyFiles",
        f"{JOB_DIR}/pylib",
        "--classpath",
        f"file://{JOB_DIR}/flink-sql-connector-kafka-5.0.0-2.2.jar",
        "--classpath",
        f"file://{JOB_DIR}/lambdarec-flink-udfs.jar",
        "--",
        "--bootstrap",
        topology.KAFKA.address(names.KAFKA_SERVICE),
        "--state-dir",
        FLINK_STATE_DIR,
        "--restore",
        "latest",
        "--checkpoint-ms",
        str(args.flink.checkpoint_ms),
        "--state-backend",
        args.flink.state_backend,
        "--parallelism",
        str(args.flink.parallelism),
        "--python-executable",
        "",
    ]


def flink_properties(args: StackArgs) -> str:
    """``FLINK_PROPERTIES`` of the JobManager and TaskManagers (the Flink image's entrypoint appends them)."""
    props = {
        "jobmanager.rpc.address": names.STREAM_JOB_SERVICE,
        "rest.port": str(topology.STREAM_JOB.port("rest_port").number),
        "rest.address": names.STREAM_JOB_SERVICE,
        "rest.bind-address": "0.0.0.0",
        "jobmanager.memory.process.size": args.flink.jobmanager_memory,
        "taskmanager.memory.process.size": args.flink.taskmanager_memory,
        "taskmanager.numberOfTaskSlots": str(args.flink.task_slots),
        "state.checkpoints.dir": f"file://{FLINK_STATE_DIR}/checkpoints",
    }
    return "".join(f"{k}: {v}\n" for k, v in props.items())


def spark_command(role: str, args: StackArgs) -> list[str]:
    """The standalone Spark master or a worker (``spark-class``)."""
    master = topology.SPARK.port("master_port").number
    ui = topology.SPARK.port("ui_port").number
    if role == "master":
        return [
            "spark-class",
            "org.apache.spark.deploy.master.Master",
            "--host",
            topology.SPARK_SERVICE,
            "--port",
            str(master),
            "--webui-port",
            str(ui),
        ]
    return [
        "spark-class",
        "org.apache.spark.deploy.worker.Worker",
        "--cores",
        str(args.spark.worker_cores),
        "--memory",
        args.spark.worker_memory,
        topology.SPARK.address(topology.SPARK_SERVICE),
    ]


def mlflow_command() -> list[str]:
    """``mlflow server`` on the Postgres the topology wires in (``MLFLOW_BACKEND_STORE_URI``)."""
    port = topology.MLFLOW.port("port").number
    host = names.MLFLOW_SERVICE
    return [
        "mlflow",
        "server",
        "--serve-artifacts",
        "--artifacts-destination",
        "/data/mlflow/artifacts",
        "--default-artifact-root",
        "mlflow-artifacts:/",
        "--host",
        "0.0.0.0",
        "--port",
        str(port),
        "--workers",
        "1",
        # Clients on the network call it by its service name; MLflow rejects unknown Host headers.
        "--allowed-hosts",
        f"{host},{host}:{port},localhost,localhost:{port},127.0.0.1,127.0.0.1:{port}",
    ]


def pusher_command(bootstrap: pulumi.Input[str], settings_env: str) -> list[pulumi.Input[str]]:
    """The stream pusher (``lambdarec.stream.pusher``) into the project's Feast store, as ``stream start`` runs it."""
    return [
        "python",
        "-m",
        "lambdarec.stream.pusher",
        "--bootstrap",
        bootstrap,
        "--metrics",
        f"{STATE_DIR}/services/{names.STREAM_PUSHER_SERVICE}/metrics.json",
        "--env",
        settings_env,
        "--state-dir",
        STATE_DIR,
    ]


def redis_command(args: StackArgs) -> list[str]:
    """``redis-server`` with an append-only file; the online store must not evict features silently."""
    return [
        "redis-server",
        "--port",
        str(topology.REDIS.port("port").number),
        "--appendonly",
        "yes",
        "--maxmemory",
        f"{args.redis.maxmemory_mb}mb",
        "--maxmemory-policy",
        "noeviction",
    ]


class LocalStack(pulumi.ComponentResource):
    """The whole pipeline on the local Docker engine.

    Args:
        name: Component name.
        args: The validated stack configuration.
        secrets: ``postgresPassword`` and ``secretKey`` as Pulumi secrets.
    """

    def __init__(
        self,
        name: str,
        args: StackArgs,
        secrets: Mapping[str, pulumi.Input[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("lambdarec:local:LocalStack", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.network = docker.Network("lambdarec", name="lambdarec", opts=child)
        self.volumes = {
            key: docker.Volume(key, name=f"lambdarec-{key}", opts=child)
            for key in ("kafka", "milvus", "postgres", "mlflow", "redis", "flink", "state", "airflow")
        }
        self.images = OwnImages("images", OwnImagesArgs(args.images), opts=child)
        img = self.images.refs
        platform_env: dict[str, pulumi.Input[str]] = {
            "LAMBDAREC_ENV": args.settings_env,
            "LAMBDAREC_STATE_DIR": STATE_DIR,
            "LAMBDAREC_SECRET_KEY": pulumi.Output.secret(secrets["secretKey"]),
        }
        declared: dict[str, list[ContainerSpec]] = {
            names.KAFKA_SERVICE: [
                ContainerSpec(
                    "",
                    args.kafka.image,
                    env=kafka_env(args),
                    volumes={"kafka": "/var/lib/kafka/data"},
                    healthcheck=[
                        "/opt/kafka/bin/kafka-broker-api-versions.sh",
                        "--bootstrap-server",
                        f"localhost:{topology.KAFKA.port('port').number}",
                    ],
                    publish=True,
                )
            ],
            names.MILVUS_SERVICE: [
                ContainerSpec(
                    "",
                    args.milvus.image,
                    command=["milvus", "run", "standalone"],
                    env={
                        "ETCD_USE_EMBED": "true",
                        "ETCD_DATA_DIR": "/var/lib/milvus/etcd",
                        "ETCD_CONFIG_PATH": "/milvus/configs/embedEtcd.yaml",
                        "COMMON_STORAGETYPE": "local",
                        "METRICS_PORT": str(topology.MILVUS.port("http_port").number),
                    },
                    uploads={"/milvus/configs/embedEtcd.yaml": MILVUS_ETCD_CONFIG},
                    volumes={"milvus": "/var/lib/milvus"},
                    healthcheck=[
                        "curl",
                        "-f",
                        f"http://localhost:{topology.MILVUS.port('http_port').number}/healthz",
                    ],
                    publish=True,
                )
            ],
            topology.MLFLOW_DB_SERVICE: [
                ContainerSpec(
                    "",
                    args.mlflow.postgres_image,
                    env={
                        "POSTGRES_USER": "mlflow",
                        "POSTGRES_DB": "mlflow",
                        "POSTGRES_PASSWORD": pulumi.Output.secret(secrets["postgresPassword"]),
                    },
                    volumes={"postgres": "/var/lib/postgresql/data"},
                    healthcheck=["pg_isready", "-U", "mlflow", "-d", "mlflow"],
                )
            ],
            names.MLFLOW_SERVICE: [
                ContainerSpec(
                    "",
                    img["mlflow"],
                    command=mlflow_command(),
                    # libpq reads the password from PGPASSWORD: the backend URI stays free of it.
                    env={"PGPASSWORD": pulumi.Output.secret(secrets["postgresPassword"])},
                    volumes={"mlflow": "/data/mlflow"},
                    healthcheck=_python_check(f"http://localhost:{topology.MLFLOW.port('port').number}/health"),
                    publish=True,
                )
            ],
            topology.REDIS_SERVICE: [
                ContainerSpec(
                    "",
                    args.redis.image,
                    command=redis_command(args),
                    volumes={"redis": "/data"},
                    healthcheck=["redis-cli", "ping"],
                    publish=True,
                )
            ],
            names.STREAM_JOB_SERVICE: [
                ContainerSpec(
                    "",
                    img["flink-job"],
                    command=["jobmanager"],
                    env={"FLINK_PROPERTIES": flink_properties(args)},
                    volumes={"flink": FLINK_STATE_DIR},
                    healthcheck=_python_check(
                        f"http://localhost:{topology.STREAM_JOB.port('rest_port').number}/overview"
                    ),
                    publish=True,
                ),
                *[
                    ContainerSpec(
                        f"taskmanager-{i}" if args.flink.task_managers > 1 else "taskmanager",
                        img["flink-job"],
                        command=["taskmanager"],
                        env={"FLINK_PROPERTIES": flink_properties(args)},
                        volumes={"flink": FLINK_STATE_DIR},
                        after=[""],
                    )
                    for i in range(args.flink.task_managers)
                ],
                ContainerSpec(
                    "submit",
                    img["flink-job"],
                    command=flink_submit_command(args),
                    env={"FLINK_PROPERTIES": flink_properties(args)},
                    volumes={"flink": FLINK_STATE_DIR},
                    one_shot=True,
                    after=["", "taskmanager", *[f"taskmanager-{i}" for i in range(args.flink.task_managers)]],
                ),
            ],
            names.STREAM_PUSHER_SERVICE: [
                ContainerSpec(
                    "",
                    img["recommender"],
                    command=pusher_command(topology.KAFKA.address(names.KAFKA_SERVICE), args.settings_env),
                    volumes={"state": STATE_DIR},
                )
            ],
            topology.SPARK_SERVICE: [
                ContainerSpec(
                    "",
                    img["spark-jobs"],
                    command=spark_command("master", args),
                    volumes={"state": STATE_DIR},
                    healthcheck=_python_check(f"http://localhost:{topology.SPARK.port('ui_port').number}/"),
                    publish=True,
                ),
                *[
                    ContainerSpec(
                        f"worker-{i}",
                        img["spark-jobs"],
                        command=spark_command("worker", args),
                        volumes={"state": STATE_DIR},
                        after=[""],
                    )
                    for i in range(args.spark.workers)
                ],
            ],
            topology.AIRFLOW_SERVICE: [
                ContainerSpec(
                    "",
                    img["airflow"],
                    command=["airflow", "standalone"],
                    env={
                        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                        "AIRFLOW__CORE__DAGS_FOLDER": "/opt/airflow/dags",
                        # `airflow standalone` keeps its SQLite database on the volume.
                        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "sqlite:////opt/airflow/data/airflow.db",
                    },
                    volumes={"state": STATE_DIR, "airflow": "/opt/airflow/data"},
                    healthcheck=_python_check(
                        f"http://localhost:{topology.AIRFLOW.port('port').number}/api/v2/monitor/health"
                    ),
                    publish=True,
                )
            ],
            topology.RECOMMENDER_SERVICE: [
                ContainerSpec(
                    "",
                    img["recommender"],
                    volumes={"state": STATE_DIR},
                    healthcheck=_python_check(
                        f"http://localhost:{topology.RECOMMENDER.port('http_port').number}/readyz"
                    ),
                    publish=True,
                )
            ],
        }
        self.services: dict[str, DockerService] = {}
        for spec in topology.SERVICES:
            deps = [self.services[d] for d in spec.depends_on]
            self.services[spec.name] = DockerService(
                spec.name,
                DockerServiceArgs(
                    service=spec,
                    containers=declared[spec.name],
                    network=self.network.name,
                    volumes=self.volumes,
                    extra_env=platform_env if spec.name in _PYTHON_SERVICES else {},
                    # Start-up order: a service's containers after its dependencies' (healthy) ones.
                    after=deps,
                ),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.images]),
            )
        self.endpoints: dict[str, Any] = {
            s.name: {p.name: f"localhost:{p.number}" for p in s.ports if p.public} for s in topology.SERVICES
        }
        self.register_outputs({"endpoints": self.endpoints, "network": self.network.name})


#: Services running lambdarec code (they read LAMBDAREC_* settings).
_PYTHON_SERVICES = frozenset(
    {names.STREAM_PUSHER_SERVICE, topology.SPARK_SERVICE, topology.AIRFLOW_SERVICE, topology.RECOMMENDER_SERVICE}
)
