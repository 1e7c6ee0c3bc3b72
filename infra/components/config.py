"""Typed stack configuration: one pydantic model per component, validated before any resource.

A stack's ``Pulumi.<stack>.yaml`` holds one object per component under the ``lambdarec:``
namespace (``lambdarec:kafka``, ``lambdarec:flink``, ...). :func:`load_stack_config` validates
all of it at once, so a missing or invalid value stops ``pulumi preview`` with a message naming
the key (``lambdarec:kafka.partitions: Input should be greater than or equal to 1``) instead of
failing halfway through ``pulumi up``. Secrets are never part of these models: they are read
with ``require_secret`` (:func:`load_secrets`) and stay Pulumi secrets end to end.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

NAMESPACE = "lambdarec"

_IMAGE_REF = re.compile(r"^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9._-]+)?(@sha256:[0-9a-f]{64})?$")
_JVM_MEMORY = re.compile(r"^[1-9][0-9]*[mg]$")


class ConfigError(ValueError):
    """A stack configuration value is missing or invalid; the message names the key."""


class _Model(BaseModel):
    """Strict camelCase models: unknown keys are errors (a typo must not pass silently)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


def _image(value: str) -> str:
    if not _IMAGE_REF.match(value):
        raise ValueError(f"{value!r} is not an image reference (name[:tag][@sha256:digest])")
    return value


class ImagesArgs(_Model):
    """Our own images (Flink job, Spark jobs, recommender, Airflow, MLflow), built from this repo."""

    tag: str = Field(default="dev", pattern=r"^[A-Za-z0-9._-]{1,128}$")
    platform: Literal["linux/amd64", "linux/arm64"] = "linux/amd64"
    prefix: str = Field(default="lambdarec", pattern=r"^[a-z0-9][a-z0-9._/-]*$")


class KafkaArgs(_Model):
    """The clickstream broker."""

    image: str = "apache/kafka:4.1.1"
    partitions: int = Field(default=4, ge=1, le=1024)
    heap: str = "512m"
    # Cloud (MSK)
    kafka_version: str = "3.9.x"
    broker_count: int = Field(default=2, ge=1)
    instance_type: str = "kafka.m7g.large"
    volume_gb: int = Field(default=100, ge=1)

    _check_image = field_validator("image")(_image)

    @field_validator("heap")
    @classmethod
    def _heap(cls, value: str) -> str:
        if not _JVM_MEMORY.match(value):
            raise ValueError(f"{value!r} is not a JVM memory size like 512m or 2g")
        return value


class FlinkArgs(_Model):
    """The speed layer's Flink cluster and job."""

    task_managers: int = Field(default=1, ge=1)
    task_slots: int = Field(default=2, ge=1)
    parallelism: int = Field(default=1, ge=1)
    checkpoint_ms: int = Field(default=10_000, ge=1000)
    state_backend: Literal["hashmap", "rocksdb"] = "hashmap"
    jobmanager_memory: str = "1g"
    taskmanager_memory: str = "2g"
    # Cloud (Flink Kubernetes Operator)
    operator_chart_version: str = "1.13.0"

    @field_validator("jobmanager_memory", "taskmanager_memory")
    @classmethod
    def _memory(cls, value: str) -> str:
        if not _JVM_MEMORY.match(value):
            raise ValueError(f"{value!r} is not a memory size like 1g or 1536m")
        return value


class SparkArgs(_Model):
    """The batch layer's Spark: a standalone cluster locally, EMR Serverless in the cloud."""

    workers: int = Field(default=1, ge=1)
    worker_cores: int = Field(default=2, ge=1)
    worker_memory: str = "2g"
    # Cloud: the release must ship Spark 4.x (the jobs are built and tested against PySpark 4.2).
    release_label: str = Field(default="emr-8.0.0", pattern=r"^emr-\d+\.\d+\.\d+$")
    max_vcpu: int = Field(default=32, ge=1)
    max_memory_gb: int = Field(default=128, ge=1)

    @field_validator("worker_memory")
    @classmethod
    def _memory(cls, value: str) -> str:
        if not _JVM_MEMORY.match(value):
            raise ValueError(f"{value!r} is not a memory size like 2g")
        return value


class RedisArgs(_Model):
    """The Feast online store."""

    image: str = "redis:7.4-alpine"
    maxmemory_mb: int = Field(default=512, ge=16)
    # Cloud (ElastiCache)
    node_type: str = "cache.t4g.medium"
    replicas: int = Field(default=1, ge=0, le=5)
    engine_version: str = "7.1"

    _check_image = field_validator("image")(_image)


class MilvusArgs(_Model):
    """The vector engine (the embedded runtime runs the same 2.3.5 standalone server)."""

    image: str = "milvusdb/milvus:v2.3.5"
    # Cloud (the milvus Helm chart on EKS)
    chart_version: str = "4.1.34"
    cluster_mode: bool = False

    _check_image = field_validator("image")(_image)


class MlflowArgs(_Model):
    """Tracking and the registry, on Postgres."""

    postgres_image: str = "postgres:17-alpine"
    # Cloud (RDS)
    db_instance_class: str = "db.t4g.micro"
    db_storage_gb: int = Field(default=20, ge=20)

    _check_image = field_validator("postgres_image")(_image)


class AirflowArgs(_Model):
    """The loop's scheduler: standalone locally, MWAA in the cloud."""

    # Cloud (MWAA)
    airflow_version: str = "3.0.6"
    environment_class: Literal["mw1.micro", "mw1.small", "mw1.medium", "mw1.large"] = "mw1.small"
    max_workers: int = Field(default=2, ge=1, le=25)


class RecommenderArgs(_Model):
    """The BentoML recommender."""

    replicas: int = Field(default=1, ge=1)
    cpu: str = "1"
    memory: str = "2Gi"


class AwsArgs(_Model):
    """Where the cloud stack goes: an existing VPC (private subnets in at least two zones)."""

    region: str = Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
    vpc_id: str = Field(pattern=r"^vpc-[0-9a-f]{8,17}$")
    private_subnet_ids: list[str] = Field(min_length=2)
    eks_version: str = "1.33"
    node_instance_type: str = "m7i.xlarge"
    node_count: int = Field(default=3, ge=1)

    @field_validator("private_subnet_ids")
    @classmethod
    def _subnets(cls, value: list[str]) -> list[str]:
        bad = [s for s in value if not re.match(r"^subnet-[0-9a-f]{8,17}$", s)]
        if bad:
            raise ValueError(f"not subnet ids: {bad}")
        return value


class StackArgs(_Model):
    """The whole stack: which platform, and each component's settings."""

    platform: Literal["local", "aws"]
    settings_env: Literal["local", "staging", "prod"] = "staging"
    images: ImagesArgs = ImagesArgs()
    kafka: KafkaArgs = KafkaArgs()
    flink: FlinkArgs = FlinkArgs()
    spark: SparkArgs = SparkArgs()
    redis: RedisArgs = RedisArgs()
    milvus: MilvusArgs = MilvusArgs()
    mlflow: MlflowArgs = MlflowArgs()
    airflow: AirflowArgs = AirflowArgs()
    recommender: RecommenderArgs = RecommenderArgs()
    aws: AwsArgs | None = None


#: Secrets each platform needs (``pulumi config set --secret lambdarec:<name> ...``).
SECRETS: dict[str, tuple[str, ...]] = {
    "local": ("postgresPassword", "secretKey"),
    "aws": ("postgresPassword", "secretKey", "redisAuthToken"),
}
_SECRET_WORDS = re.compile(r"passw(or)?d|secret|token|credential|private_?key|api_?key|access_?key", re.IGNORECASE)


def looks_secret(key: str) -> bool:
    """True for a config key whose value must be a Pulumi secret (``secure:`` in the stack file)."""
    return bool(_SECRET_WORDS.search(key))


def _key_of(loc: tuple[int | str, ...]) -> str:
    head, *rest = [str(part) for part in loc]
    return f"{NAMESPACE}:{head}" + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in rest)


def load_stack_config(values: Mapping[str, Any]) -> StackArgs:
    """Validate a stack's configuration.

    Args:
        values: The ``lambdarec:`` keys without the namespace (``{"kafka": {...}, "platform": "local"}``);
            secret keys are skipped here (see :func:`load_secrets`).

    Returns:
        The validated configuration.

    Raises:
        ConfigError: A value is missing or invalid; each problem on its own line, naming its key.
    """
    plain = {k: v for k, v in values.items() if k not in SECRETS["aws"]}
    try:
        args = StackArgs.model_validate(plain)
    except ValidationError as err:
        problems = [f"{_key_of(e['loc'])}: {e['msg']}" for e in err.errors()]
        raise ConfigError("invalid stack configuration:\n  " + "\n  ".join(problems)) from None
    if args.platform == "aws" and args.aws is None:
        raise ConfigError(f"{NAMESPACE}:aws: required when {NAMESPACE}:platform is aws (region, vpcId, ...)")
    return args


def read_pulumi_config() -> dict[str, Any]:
    """The ``lambdarec:`` keys of the current stack, as plain values (objects parsed from JSON).

    Every key is read, so a misspelt one (``lambdarec:kafak``) is an error, not a silent default.
    Secret keys are left out: they are read with :func:`load_secrets` only.
    """
    import json

    from pulumi.runtime import config as runtime_config

    everything = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    prefix = f"{NAMESPACE}:"
    out: dict[str, Any] = {}
    for full_key, raw in everything.items():
        key = full_key[len(prefix) :]
        if not full_key.startswith(prefix) or key in SECRETS["aws"]:
            continue
        try:
            out[key] = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError:
            out[key] = raw
    return out


def load_secrets(platform: str) -> dict[str, Any]:
    """The platform's secrets as Pulumi secret Outputs.

    Raises:
        ConfigError: A secret is not set; the message says how to set it.
    """
    import pulumi

    config = pulumi.Config(NAMESPACE)
    out: dict[str, Any] = {}
    for key in SECRETS[platform]:
        value = config.get_secret(key)
        if value is None:
            raise ConfigError(
                f"{NAMESPACE}:{key}: missing secret; set it with `pulumi config set --secret {NAMESPACE}:{key} <value>`"
            )
        out[key] = value
    return out
