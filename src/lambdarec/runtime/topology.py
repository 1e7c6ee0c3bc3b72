"""The service topology: which services make up lambdarec, their ports, the addresses they
hand to their clients (as environment variables) and who depends on whom.

One description, two readers:

* the embedded runtime (``lambdarec services`` / ``lambdarec stream start``) takes its port
  names and its client endpoints from here (``kafka.py``, ``milvus.py``, ``mlflow.py``,
  ``redis_server.py``, ``stream/service.py``), picking free port numbers on loopback;
* the Pulumi program (``infra/``) declares one container (local stack) or one managed
  resource (cloud stacks) per entry, publishes :attr:`Port.number`, wires each service's
  environment from the services it :attr:`~Service.depends_on` and orders start-up by it.

Pure data on purpose: importing this module imports nothing but the standard library and
:mod:`lambdarec.names`, so the infra environment can read it without the engines' clients.
A unit test (``tests/unit/test_topology.py``) proves the runtime and this file agree.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal

from lambdarec import names

Protocol = Literal["tcp", "http", "grpc", "kafka"]


@dataclass(frozen=True)
class Port:
    """One named port of a service.

    Attributes:
        name: The name the embedded runtime gives it (``ManagedService.port_names``).
        number: The well-known number containers listen on and the local stack publishes.
        protocol: What speaks on it (documentation, and the scheme of health checks).
        public: Published to the host by the local stack (False: reachable inside the network only).
    """

    name: str
    number: int
    protocol: Protocol = "tcp"
    public: bool = True


@dataclass(frozen=True)
class Service:
    """One service of the topology.

    Attributes:
        name: Service name (container name in the local stack, ``ManagedService.name`` when embedded).
        role: One line: what it does in the pipeline.
        ports: Its named ports; the first is the one clients use.
        client_env: Environment variables this service gives to the services that depend on it,
            as templates over ``{host}`` and ``{<port name>}`` (e.g. ``"{host}:{port}"``).
        depends_on: Services that must be up (healthy) before this one starts.
        env: Fixed environment variables of the service itself.
        embedded: True when ``lambdarec services`` / ``stream start`` runs it as a local process.
    """

    name: str
    role: str
    ports: tuple[Port, ...] = ()
    client_env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    depends_on: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    embedded: bool = False

    @property
    def port_names(self) -> tuple[str, ...]:
        """The names of its ports, in order."""
        return tuple(p.name for p in self.ports)

    def port(self, name: str) -> Port:
        """One port by name.

        Raises:
            KeyError: The service has no such port.
        """
        for port in self.ports:
            if port.name == name:
                return port
        raise KeyError(f"{self.name} has no port {name!r}; it has {list(self.port_names)}")

    def endpoints(self, host: str, ports: Mapping[str, int] | None = None) -> dict[str, str]:
        """The client environment of this service at ``host``.

        Args:
            host: Host name or address clients reach it at (``127.0.0.1``, a container name).
            ports: Port numbers by name; default the well-known :attr:`Port.number` of each.

        Returns:
            ``{variable: value}`` with every template filled.
        """
        numbers = {p.name: p.number for p in self.ports}
        numbers.update(ports or {})
        return {var: template.format(host=host, **numbers) for var, template in self.client_env.items()}

    def address(self, host: str, ports: Mapping[str, int] | None = None) -> str:
        """The address clients use: the value of its first client variable.

        Raises:
            ValueError: The service gives its clients no address.
        """
        values = self.endpoints(host, ports)
        if not values:
            raise ValueError(f"{self.name} gives its clients no address")
        return next(iter(values.values()))


# Names of the services that are not embedded processes (yet), and Redis' for infra/ ---------------
REDIS_SERVICE: Final = names.REDIS_SERVICE
MLFLOW_DB_SERVICE: Final = "mlflow-db"
SPARK_SERVICE: Final = "spark"
AIRFLOW_SERVICE: Final = "airflow"
RECOMMENDER_SERVICE: Final = "recommender"

# Client variables (pydantic-settings names of lambdarec.settings, plus the Feast placeholder) -----
KAFKA_BOOTSTRAP_ENV: Final = "LAMBDAREC_KAFKA__BOOTSTRAP_SERVERS"
MILVUS_URI_ENV: Final = "LAMBDAREC_MILVUS__URI"
MLFLOW_URI_ENV: Final = "LAMBDAREC_MLFLOW__TRACKING_URI"
REDIS_URL_ENV: Final = "LAMBDAREC_REDIS_URL"
SPARK_MASTER_ENV: Final = "LAMBDAREC_SPARK_MASTER"
MLFLOW_DB_URI_ENV: Final = "MLFLOW_BACKEND_STORE_URI"


def _env(**values: str) -> Mapping[str, str]:
    return MappingProxyType(dict(values))


KAFKA: Final = Service(
    name=names.KAFKA_SERVICE,
    role="the clickstream broker: one KRaft node (broker + controller)",
    ports=(Port("port", 9092, "kafka"), Port("controller_port", 9093, "kafka", public=False)),
    client_env=_env(**{KAFKA_BOOTSTRAP_ENV: "{host}:{port}"}),
    embedded=True,
)
MILVUS: Final = Service(
    name=names.MILVUS_SERVICE,
    role="the vector engine: item embeddings behind an alias",
    ports=(Port("port", 19530, "grpc"), Port("http_port", 9091, "http")),
    client_env=_env(**{MILVUS_URI_ENV: "http://{host}:{port}"}),
    embedded=True,
)
MLFLOW_DB: Final = Service(
    name=MLFLOW_DB_SERVICE,
    role="MLflow's backend store (Postgres; the embedded MLflow uses SQLite instead)",
    ports=(Port("port", 5432, "tcp", public=False),),
    client_env=_env(**{MLFLOW_DB_URI_ENV: "postgresql://mlflow@{host}:{port}/mlflow"}),
)
MLFLOW: Final = Service(
    name=names.MLFLOW_SERVICE,
    role="experiment tracking and the model registry (champion / challenger aliases)",
    ports=(Port("port", 5000, "http"),),
    client_env=_env(**{MLFLOW_URI_ENV: "http://{host}:{port}"}),
    depends_on=(MLFLOW_DB_SERVICE,),
    # The job runner (huey consumers for GenAI scorers) adds processes tracking does not need.
    env=_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"),
    embedded=True,
)
REDIS: Final = Service(
    name=REDIS_SERVICE,
    role="the Feast online store of staging and prod (embedded on request: `services up redis`; local uses SQLite)",
    ports=(Port("port", 6379, "tcp"),),
    client_env=_env(**{REDIS_URL_ENV: "{host}:{port}"}),
    embedded=True,
)
STREAM_JOB: Final = Service(
    name=names.STREAM_JOB_SERVICE,
    role="the PyFlink speed layer: clicks -> session / user / item features (JobManager REST on rest_port)",
    ports=(Port("rest_port", 8081, "http"),),
    depends_on=(names.KAFKA_SERVICE,),
    env=_env(PYTHONUNBUFFERED="1"),
    embedded=True,
)
STREAM_PUSHER: Final = Service(
    name=names.STREAM_PUSHER_SERVICE,
    role="the pusher: features.* topics -> the Feast online store",
    depends_on=(names.KAFKA_SERVICE, REDIS_SERVICE, names.STREAM_JOB_SERVICE),
    env=_env(PYTHONUNBUFFERED="1"),
    embedded=True,
)
SPARK: Final = Service(
    name=SPARK_SERVICE,
    role="the batch layer's Spark cluster: bronze -> silver -> gold from the packaged jobs",
    ports=(Port("master_port", 7077, "tcp"), Port("ui_port", 8090, "http")),
    client_env=_env(**{SPARK_MASTER_ENV: "spark://{host}:{master_port}"}),
    depends_on=(names.KAFKA_SERVICE,),
)
AIRFLOW: Final = Service(
    name=AIRFLOW_SERVICE,
    role="the loop: daily_features, weekly_retrain, drift_monitor (our DAGs)",
    ports=(Port("port", 8080, "http"),),
    depends_on=(names.KAFKA_SERVICE, SPARK_SERVICE, REDIS_SERVICE, names.MLFLOW_SERVICE, names.MILVUS_SERVICE),
    embedded=True,  # `lambdarec services up airflow` (airflow standalone; Spark runs in its tasks' processes)
)
RECOMMENDER: Final = Service(
    name=RECOMMENDER_SERVICE,
    role="the BentoML recommender: /recommend over HTTP and gRPC",
    ports=(Port("http_port", 3000, "http"), Port("grpc_port", 50051, "grpc")),
    depends_on=(REDIS_SERVICE, names.MILVUS_SERVICE, names.MLFLOW_SERVICE),
)

#: Every service, in an order where each comes after what it depends on.
SERVICES: Final[tuple[Service, ...]] = (
    KAFKA,
    MILVUS,
    MLFLOW_DB,
    MLFLOW,
    REDIS,
    STREAM_JOB,
    STREAM_PUSHER,
    SPARK,
    AIRFLOW,
    RECOMMENDER,
)


def service(name: str) -> Service:
    """One service by name.

    Raises:
        KeyError: No such service (the message lists the known ones).
    """
    for candidate in SERVICES:
        if candidate.name == name:
            return candidate
    raise KeyError(f"unknown service {name!r}; known: {[s.name for s in SERVICES]}")


def dependencies(name: str) -> Iterator[Service]:
    """Every service ``name`` needs, directly or not, each once, dependencies first."""
    seen: set[str] = set()

    def walk(current: str) -> Iterator[Service]:
        for dep in service(current).depends_on:
            if dep not in seen:
                seen.add(dep)
                yield from walk(dep)
                yield service(dep)

    yield from walk(name)


def client_environment(name: str, host_of: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of service ``name``: its own ``env`` plus what its direct dependencies give.

    Args:
        name: The service.
        host_of: The host of each dependency (default: its service name, as on a Docker network).

    Returns:
        ``{variable: value}``.
    """
    target = service(name)
    env = dict(target.env)
    for dep in target.depends_on:
        host = (host_of or {}).get(dep, dep)
        env.update(service(dep).endpoints(host))
    return env
