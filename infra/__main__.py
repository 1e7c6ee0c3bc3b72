"""lambdarec on Pulumi: the whole pipeline, declared once, on local Docker or on AWS.

Stack ``local`` runs every service of the topology (Kafka in KRaft mode, a Flink JobManager and
TaskManager with the speed-layer job submitted, a Spark standalone cluster for the batch jobs,
Redis as the Feast online store, Milvus standalone, MLflow on Postgres, Airflow with our DAGs, the
recommender) as containers on one Docker network. Stack ``aws`` declares the same services on
MSK, EKS (Flink operator, Milvus, MLflow, the pusher, the recommender), EMR Serverless,
ElastiCache, RDS, S3 and MWAA. Services, ports, environment variables and start order come from
``lambdarec.runtime.topology``, the description ``lambdarec services`` runs from.

The configuration is validated before any resource is declared: a missing or invalid value stops
``pulumi preview`` with a message naming its key.
"""

from __future__ import annotations

import pulumi

from components.config import ConfigError, load_secrets, load_stack_config, read_pulumi_config
from components.images import missing_artifacts


def main() -> None:
    """Validate the stack configuration, then declare the stack's components."""
    args = load_stack_config(read_pulumi_config())
    missing = missing_artifacts()
    if missing and not pulumi.runtime.is_dry_run():
        raise ConfigError("build these artifacts before `pulumi up`:\n  " + "\n  ".join(missing))
    for item in missing:
        pulumi.log.warn(f"not built yet, `pulumi up` will stop: {item}")
    region = pulumi.Config("aws").get("region")
    if args.aws is not None and region is not None and region != args.aws.region:
        raise ConfigError(f"lambdarec:aws.region ({args.aws.region}) and aws:region ({region}) must agree")
    secrets = load_secrets(args.platform)
    if args.platform == "local":
        from components.local import LocalStack

        local = LocalStack("lambdarec", args, secrets)
        pulumi.export("endpoints", local.endpoints)
    else:
        from components.aws import AwsStack

        cloud = AwsStack("lambdarec", args, secrets)
        pulumi.export("kafka_bootstrap", cloud.kafka.bootstrap)
        pulumi.export("milvus_uri", cloud.vector_store.uri)
        pulumi.export("mlflow_uri", cloud.tracking.uri)
        pulumi.export("airflow_url", cloud.scheduler.environment.webserver_url)
        pulumi.export("lake_bucket", cloud.storage.buckets["lake"].bucket)


main()
