"""Typed settings per environment.

Values come, lowest precedence first, from the field defaults, from
``environments/<env>/settings.toml`` and from ``LAMBDAREC_*`` environment variables
(nested with ``__``, e.g. ``LAMBDAREC_KAFKA__BOOTSTRAP_SERVERS``). Settings are built in
``main()`` or in fixtures through :func:`load_settings`, never at import.
"""

from __future__ import annotations

import os
import tomllib
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lambdarec.events.contract import EARLIEST_EVENT_DATE, Bounds, epoch_ms_of_date

EnvName = Literal["local", "staging", "prod"]

_DEFAULT_SECRET = "lambdarec-local"


def find_project_root(start: Path | None = None) -> Path | None:
    """Return the lambdarec checkout that holds ``start`` (or this package), if any.

    Args:
        start: Where to start looking; defaults to this file's folder.

    Returns:
        The folder holding ``pyproject.toml`` and ``environments/``, or None when
        lambdarec runs from an installed wheel outside a checkout.
    """
    here = (start or Path(__file__)).resolve()
    for folder in [here, *here.parents]:
        if (folder / "pyproject.toml").is_file() and (folder / "environments").is_dir():
            return folder
    return None


class KafkaSettings(BaseModel):
    """Where the clickstream broker is and how producers talk to it."""

    bootstrap_servers: str | None = Field(
        default=None,
        description="host:port list; None means the embedded broker started by `lambdarec services up`.",
    )
    port: int = Field(default=0, description="Embedded broker port; 0 picks a free port on first start.")
    controller_port: int = 0
    partitions: int = Field(default=4, ge=1)
    max_event_bytes: int = Field(default=16_384, ge=256, description="Larger raw events are rejected.")
    heap: str = "512m"
    brokers: int = Field(
        default=1,
        ge=1,
        le=9,
        description=(
            "Nodes of the embedded cluster (each a broker + KRaft controller process: `kafka`, `kafka-2`, ...); "
            "the cluster profile (`lambdarec --profile cluster`) sets 3."
        ),
    )
    replication_factor: int = Field(
        default=1, ge=1, description="Replicas of each topic the pipeline creates (at most the cluster's brokers)."
    )
    min_insync_replicas: int = Field(
        default=1,
        ge=1,
        description="`min.insync.replicas` of those topics: replicas that must hold a write before acks=all answers.",
    )


class StreamSettings(BaseModel):
    """The embedded speed layer (the Flink job on a local mini-cluster)."""

    heap: str = Field(
        default="2g",
        description="Most heap the job's JVM may take (-Xmx). Without a cap the JVM grows its heap towards a "
        "quarter of the machine (measured: 3.6 GB of PSS after a 200k-event demo on a 24 GiB machine).",
    )


class SparkClusterSettings(BaseModel):
    """The embedded Spark standalone cluster of the cluster profile (a master and its workers)."""

    workers: int = Field(
        default=0, ge=0, le=8, description="Workers started with the master; 0 (the default) starts no cluster."
    )
    worker_cores: int = Field(default=1, ge=1, description="Cores each worker offers to executors.")
    worker_memory: str = Field(default="1g", description="Memory each worker offers (an executor takes 1g).")
    daemon_memory: str = Field(default="256m", description="Heap of the master and worker daemons themselves.")
    master_port: int = Field(default=0, description="The master's port; 0 picks a free one on first start.")


class FlinkClusterSettings(BaseModel):
    """Where the speed layer runs: a local mini-cluster (the default) or a Flink session cluster.

    With ``task_managers`` > 0 (the cluster profile) ``lambdarec services up`` starts a session
    cluster from PyFlink's own scripts: a JobManager (``flink``) and that many TaskManagers
    (``flink-taskmanager-N``), and ``lambdarec stream start`` submits the packaged job to it with
    ``flink run``. ``rest_address`` submits to an existing session cluster instead.
    """

    task_managers: int = Field(
        default=0, ge=0, le=8, description="TaskManagers of the embedded session cluster; 0 (default): mini-cluster."
    )
    slots: int = Field(default=2, ge=1, le=8, description="Task slots of each TaskManager.")
    parallelism: int = Field(default=2, ge=1, description="Parallelism the speed layer is submitted with (-p).")
    jobmanager_memory: str = Field(default="768m", description="Process size of the JobManager (heap + metaspace).")
    taskmanager_memory: str = Field(
        default="1280m", description="Process size of each TaskManager (its Python workers come on top)."
    )
    rest_port: int = Field(default=0, description="The embedded JobManager's REST port; 0 picks a free one (kept).")
    rest_address: str | None = Field(
        default=None,
        description=(
            "host:port of an existing session cluster's REST API to submit to (LAMBDAREC_FLINK_CLUSTER__REST_ADDRESS); "
            "None means the embedded JobManager when task_managers > 0."
        ),
    )
    state_uri: str | None = Field(
        default=None,
        description=(
            "Folder the submitted job's checkpoints go under (<state_uri>/checkpoints), which every TaskManager "
            "must reach (s3://..., hdfs://..., a shared mount); None: the stream-job service's data folder on this "
            "machine (the embedded TaskManagers share it). `stream start` resumes from the newest checkpoint "
            "only in a local folder."
        ),
    )

    @property
    def session(self) -> bool:
        """True when the speed layer is submitted to a session cluster rather than run on a mini-cluster."""
        return self.task_managers > 0 or bool(self.rest_address)


class MilvusSettings(BaseModel):
    """The vector engine used for candidate retrieval."""

    uri: str | None = Field(default=None, description="None means the embedded Milvus standalone server.")
    port: int = 0
    token: SecretStr = SecretStr("")
    max_go_gc: int = Field(
        default=800,
        ge=30,
        description=(
            "Embedded server: the highest GOGC Milvus's GC helper may set (Milvus's own default 200; the helper "
            "still lowers it when memory runs short). Fewer Go collections, fewer searches that wait for one: "
            "the 1,000-vector round trip's p99 fell from ~5.8 to ~2.6 ms on 2 cores for ~100 MB more heap."
        ),
    )


class MlflowSettings(BaseModel):
    """Experiment tracking and the model registry."""

    tracking_uri: str | None = Field(default=None, description="None means the embedded tracking server.")
    port: int = 0


class RedisSettings(BaseModel):
    """The embedded Redis (``lambdarec services up redis``), for an environment whose online store is Redis.

    The address clients use is :attr:`Settings.redis_url` (``LAMBDAREC_REDIS_URL``) when set,
    else the running embedded server's.
    """

    port: int = Field(default=0, description="Embedded server port; 0 picks a free port on first start (kept after).")
    server: str = Field(
        default="redis-server", description="The redis-server executable: a name on PATH or a path (Debian package)."
    )


class ServingSettings(BaseModel):
    """The recommender service (BentoML over HTTP, plus a gRPC server in the same process)."""

    port: int = Field(default=0, description="HTTP port; 0 picks a free port on first start (kept after).")
    grpc_port: int = Field(default=0, description="gRPC port; 0 picks a free port on first start (kept after).")
    token: SecretStr = Field(
        default=SecretStr(""), description="Bearer token required on every call when set (empty: no auth)."
    )
    latency_budget_ms: float = Field(
        default=50.0, gt=0, description="A stage slower than this answers from the fallbacks instead of failing."
    )
    max_batch_size: int = Field(default=32, ge=1, description="Adaptive batching: most requests per forward pass.")
    max_latency_ms: int = Field(
        default=2_000,
        ge=10,
        description=(
            "Adaptive batching: BentoML refuses (503) a request it expects to wait longer than this, "
            "so it is a ceiling far above the latency goal, not a batching window (BentoML adapts that)."
        ),
    )
    max_request_bytes: int = Field(default=16_384, ge=256, description="Larger request bodies get 413.")
    model_alias: str = Field(default="champion", description="The MLflow alias whose bundle is served.")
    access_log: bool = Field(
        default=False,
        description="Log every request (BentoML's access log); off by default: /metrics counts them, and a "
        "log line per request costs the single worker measurable time.",
    )
    reload_interval_s: float = Field(default=10.0, gt=0, description="How often the model alias is checked.")
    feature_log_rate: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description=(
            "Share of the requests answered by the models whose assembled query inputs are logged to the "
            "features.served topic (drift_monitor's production side); 0 turns the log off."
        ),
    )
    online_store_timeout_ms: float = Field(
        default=20.0,
        gt=0,
        description=(
            "Connect and read timeout of the recommender's Redis client (no backoff, one immediate retry on a "
            "broken connection): a dead or stalled store costs at most this, well inside the latency budget."
        ),
    )


class StorefrontSettings(BaseModel):
    """The demo storefront page (``lambdarec storefront``)."""

    port: int = Field(default=0, description="HTTP port; 0 picks a free port on first start (kept after).")
    recommender_url: str | None = Field(
        default=None, description="Base URL of /recommend; None means the embedded recommender service."
    )
    recommend_timeout_s: float = Field(default=2.0, gt=0, description="How long the page waits for /recommend.")


class Settings(BaseSettings):
    """All settings of one environment."""

    model_config = SettingsConfigDict(env_prefix="LAMBDAREC_", env_nested_delimiter="__", extra="ignore")

    env: EnvName = "local"
    state_dir: Path = Field(
        default=Path(".lambdarec"),
        description="Data, logs and pid files of the embedded services.",
    )
    jars_dir: Path | None = Field(
        default=None, description="JVM artifacts resolved by `make setup`; default <checkout>/.cache/jars."
    )
    spark_master: str = Field(
        default="local[2]",
        description=(
            "Master the daily DAG's packaged Spark jobs are submitted to (`spark-submit --master`): "
            "`local[N]` runs them on this machine; a cluster sets e.g. `spark://host:7077` or `yarn`."
        ),
    )
    secret_key: SecretStr = SecretStr(_DEFAULT_SECRET)
    max_clock_skew_s: int = Field(default=86_400, ge=0, description="Events further in the future are rejected.")
    earliest_event_time: date = Field(
        default=EARLIEST_EVENT_DATE,
        description=(
            "Events before this date (UTC midnight) are rejected by every path: adapters, publisher, "
            "silver, the speed layer. Lower it for historical datasets (e.g. 1990-01-01)."
        ),
    )
    listen_host: Literal["127.0.0.1", "0.0.0.0"] = Field(  # noqa: S104 - opt-in, documented in the README
        default="127.0.0.1",
        description=(
            "Where the embedded Kafka and MLflow listen: loopback (this machine only) by default; "
            "`0.0.0.0` opens them to the network (see the README on what then protects them)."
        ),
    )
    redis_url: SecretStr | None = Field(
        default=None,
        description=(
            "Feast's Redis connection string (host:port[,password=...,ssl=true]) for an environment whose "
            "feature_store.yaml uses Redis; None means the embedded server (`lambdarec services up redis`)."
        ),
    )
    profile: str | None = Field(
        default=None,
        description=(
            "The profile laid over the environment's settings (environments/profiles/<name>.toml; "
            "`lambdarec --profile`, LAMBDAREC_PROFILE). Recorded so that every process the supervisor starts "
            "(pusher, recommender, stream job keeper) loads the same settings."
        ),
    )
    online_store: Literal["environment", "redis"] = Field(
        default="environment",
        description=(
            "The Feast online store: `environment` keeps the one its feature_store.yaml names (SQLite for "
            "local, Redis for staging/prod); `redis` puts Redis there whatever the yaml says (redis_url, else "
            "the embedded server, which `services up` then starts). The cluster profile sets `redis`."
        ),
    )
    kafka: KafkaSettings = KafkaSettings()
    stream: StreamSettings = StreamSettings()
    spark_cluster: SparkClusterSettings = SparkClusterSettings()
    flink_cluster: FlinkClusterSettings = FlinkClusterSettings()
    redis: RedisSettings = RedisSettings()
    milvus: MilvusSettings = MilvusSettings()
    mlflow: MlflowSettings = MlflowSettings()
    serving: ServingSettings = ServingSettings()
    storefront: StorefrontSettings = StorefrontSettings()

    @model_validator(mode="after")
    def _reject_default_secrets_outside_local(self) -> Settings:
        if self.env != "local" and self.secret_key.get_secret_value() == _DEFAULT_SECRET:
            raise ValueError(f"secret_key must be set (LAMBDAREC_SECRET_KEY) in the {self.env!r} environment")
        return self

    @property
    def earliest_event_ms(self) -> int:
        """:attr:`earliest_event_time` in epoch milliseconds."""
        return epoch_ms_of_date(self.earliest_event_time)

    def event_bounds(self) -> Bounds:
        """The event contract's bounds these settings hold (earliest time, clock skew, size)."""
        return Bounds(
            earliest_ms=self.earliest_event_ms,
            max_future_ms=self.max_clock_skew_s * 1000,
            max_bytes=self.kafka.max_event_bytes,
        )

    def resolved_jars_dir(self) -> Path:
        """Return the folder of resolved JVM artifacts.

        Raises:
            FileNotFoundError: When no checkout is found and ``jars_dir`` is unset.
        """
        if self.jars_dir is not None:
            return self.jars_dir
        root = find_project_root()
        if root is None:
            raise FileNotFoundError("jars_dir is unset and no lambdarec checkout was found; set LAMBDAREC_JARS_DIR")
        return root / ".cache" / "jars"


def _read_environment_file(env: str, root: Path | None) -> dict[str, Any]:
    if root is None:
        return {}
    path = root / "environments" / env / "settings.toml"
    if not path.is_file():
        return {}
    with path.open("rb") as handle:
        return tomllib.load(handle)


def load_settings(env: str | None = None, *, profile: str | None = None, **overrides: Any) -> Settings:
    """Build the settings of one environment.

    Args:
        env: ``local``, ``staging`` or ``prod``; defaults to ``LAMBDAREC_ENV`` or ``local``.
        profile: A profile laid over the environment (``environments/profiles/<name>.toml``);
            defaults to ``LAMBDAREC_PROFILE``, which the supervisor sets for the processes it starts.
        **overrides: Field values that win over the file, the environment variables and the profile.

    Returns:
        The validated settings.

    Raises:
        ValueError: No such profile (the message lists those that exist).
    """
    name = env or os.environ.get("LAMBDAREC_ENV", "local")
    root = find_project_root()
    file_values = _read_environment_file(name, root)
    # Precedence, lowest first: the environment's file, then LAMBDAREC_* variables, then the
    # profile, then the caller's explicit arguments (a test passing its own state_dir must get it
    # even when LAMBDAREC_STATE_DIR is set in the shell).
    env_values = Settings().model_dump(exclude_unset=True) if _has_env_overrides() else {}
    merged = _deep_merge({**file_values, "env": name}, env_values)
    chosen = profile or os.environ.get("LAMBDAREC_PROFILE") or None
    if chosen:
        merged = _deep_merge(merged, {**profile_overrides(chosen, root), "profile": chosen})
    return Settings(**_deep_merge(merged, {**overrides, "env": name}))


PROFILES_DIR = Path("environments") / "profiles"
"""Where profiles live in a checkout (``<name>.toml``)."""


def available_profiles(root: Path | None = None) -> list[str]:
    """Names of the profiles in the checkout (``environments/profiles/*.toml``)."""
    root = root or find_project_root()
    folder = (root / PROFILES_DIR) if root else None
    return sorted(p.stem for p in folder.glob("*.toml")) if folder and folder.is_dir() else []


def profile_overrides(name: str, root: Path | None = None) -> dict[str, Any]:
    """The settings a profile sets, ready for ``load_settings(env, **overrides)``.

    Raises:
        ValueError: No such profile (the message lists those that exist).
    """
    root = root or find_project_root()
    path = root / PROFILES_DIR / f"{name}.toml" if root else None
    if path is None or not path.is_file():
        raise ValueError(f"unknown profile {name!r}; known: {available_profiles(root)} (environments/profiles/)")
    with path.open("rb") as handle:
        return tomllib.load(handle)


def _has_env_overrides() -> bool:
    return any(key.startswith("LAMBDAREC_") for key in os.environ)


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
