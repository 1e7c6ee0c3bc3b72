"""The ``aws`` stack: the same topology on managed AWS services and one EKS cluster.

=================  ==========================================================================
topology service   AWS
=================  ==========================================================================
kafka              MSK (provisioned brokers, TLS + plaintext inside the VPC)
stream-job         Flink Kubernetes Operator on EKS, one ``FlinkDeployment`` of our Flink image
                   (Managed Service for Apache Flink stops at Flink 1.x; the job needs 2.2)
stream-pusher      a Deployment on EKS (the recommender image)
spark              EMR Serverless (Spark) with our Spark image as its custom image
redis              ElastiCache for Redis (TLS, auth token from a Pulumi secret)
milvus             the milvus Helm chart on EKS
mlflow / -db       a Deployment on EKS (our MLflow image), RDS Postgres, artifacts in S3
airflow            MWAA, DAGs uploaded from ``dags/`` to S3
recommender        a Deployment + load-balanced Service on EKS (the bento image)
(offline store)    S3: the lake (bronze/silver/gold, Feast's Parquet offline store)
=================  ==========================================================================

Every workload's environment comes from :func:`components.wiring.service_env`, i.e. from the
topology, with the managed endpoints as values.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker
import pulumi_kubernetes as k8s

from components.config import AwsArgs, StackArgs
from components.images import IMAGES, OwnImages, OwnImagesArgs
from components.local import STATE_DIR, pusher_command
from components.wiring import REPO_ROOT, service_env
from lambdarec import names
from lambdarec.runtime import topology

NAMESPACE = "lambdarec"


def _assume(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
        }
    )


def _k8s_env(env: Mapping[str, pulumi.Input[str]], secret: k8s.core.v1.Secret | None = None) -> list[Any]:
    """Container env: plain values inline, secret ones as references to ``secret``."""
    out: list[Any] = []
    for key in sorted(env):
        if secret is not None and key in _SECRET_ENV:
            out.append(
                k8s.core.v1.EnvVarArgs(
                    name=key,
                    value_from=k8s.core.v1.EnvVarSourceArgs(
                        secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(name=secret.metadata.name, key=key)
                    ),
                )
            )
        else:
            out.append(k8s.core.v1.EnvVarArgs(name=key, value=env[key]))
    return out


#: Variables whose values are secrets: they go through a Kubernetes Secret, never inline.
_SECRET_ENV = frozenset({topology.REDIS_URL_ENV, "LAMBDAREC_SECRET_KEY", "PGPASSWORD"})


class Network(pulumi.ComponentResource):
    """One security group for everything in the stack (members reach each other, nothing else does)."""

    def __init__(self, name: str, args: AwsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("lambdarec:aws:Network", name, None, opts)
        self.security_group = aws.ec2.SecurityGroup(
            "internal",
            vpc_id=args.vpc_id,
            description="lambdarec: members reach each other",
            ingress=[aws.ec2.SecurityGroupIngressArgs(protocol="-1", from_port=0, to_port=0, self=True)],
            egress=[aws.ec2.SecurityGroupEgressArgs(protocol="-1", from_port=0, to_port=0, cidr_blocks=["0.0.0.0/0"])],
            tags={"project": "lambdarec"},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.subnet_ids = args.private_subnet_ids
        self.register_outputs({"security_group_id": self.security_group.id})


class Storage(pulumi.ComponentResource):
    """S3: the lake (and Feast offline store), MLflow's artifacts, MWAA's DAGs; ECR for our images."""

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("lambdarec:aws:Storage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.buckets = {}
        for key in ("lake", "artifacts", "airflow"):
            bucket = aws.s3.Bucket(key, bucket_prefix=f"lambdarec-{key}-", force_destroy=False, opts=child)
            aws.s3.BucketPublicAccessBlock(
                key,
                bucket=bucket.id,
                block_public_acls=True,
                block_public_policy=True,
                ignore_public_acls=True,
                restrict_public_buckets=True,
                opts=child,
            )
            # MWAA requires versioning on its source bucket; the lake keeps it for recoveries.
            aws.s3.BucketVersioning(
                key,
                bucket=bucket.id,
                versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
                opts=child,
            )
            self.buckets[key] = bucket
        self.repositories = {
            spec.key: aws.ecr.Repository(
                spec.key,
                name=f"lambdarec/{spec.key}",
                image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
                opts=child,
            )
            for spec in IMAGES
        }
        self.register_outputs({k: b.bucket for k, b in self.buckets.items()})


class Kafka(pulumi.ComponentResource):
    """MSK: the clickstream broker."""

    def __init__(
        self, name: str, args: StackArgs, network: Network, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("lambdarec:aws:Kafka", name, None, opts)
        config = aws.msk.Configuration(
            "broker",
            kafka_versions=[args.kafka.kafka_version],
            server_properties="\n".join(
                [
                    f"num.partitions={args.kafka.partitions}",
                    "auto.create.topics.enable=true",
                    f"message.max.bytes={2 * 2**20}",
                    f"default.replication.factor={min(3, args.kafka.broker_count)}",
                ]
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.cluster = aws.msk.Cluster(
            "kafka",
            kafka_version=args.kafka.kafka_version,
            number_of_broker_nodes=args.kafka.broker_count,
            broker_node_group_info=aws.msk.ClusterBrokerNodeGroupInfoArgs(
                instance_type=args.kafka.instance_type,
                client_subnets=network.subnet_ids,
                security_groups=[network.security_group.id],
                storage_info=aws.msk.ClusterBrokerNodeGroupInfoStorageInfoArgs(
                    ebs_storage_info=aws.msk.ClusterBrokerNodeGroupInfoStorageInfoEbsStorageInfoArgs(
                        volume_size=args.kafka.volume_gb
                    )
                ),
            ),
            configuration_info=aws.msk.ClusterConfigurationInfoArgs(arn=config.arn, revision=config.latest_revision),
            encryption_info=aws.msk.ClusterEncryptionInfoArgs(
                encryption_in_transit=aws.msk.ClusterEncryptionInfoEncryptionInTransitArgs(
                    client_broker="TLS_PLAINTEXT", in_cluster=True
                )
            ),
            tags={"project": "lambdarec"},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.bootstrap = self.cluster.bootstrap_brokers
        self.register_outputs({"bootstrap": self.bootstrap})


class OnlineStore(pulumi.ComponentResource):
    """ElastiCache Redis: the Feast online store, TLS with an auth token."""

    def __init__(
        self,
        name: str,
        args: StackArgs,
        network: Network,
        auth_token: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("lambdarec:aws:OnlineStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        subnets = aws.elasticache.SubnetGroup("redis", subnet_ids=network.subnet_ids, opts=child)
        port = topology.REDIS.port("port").number
        self.group = aws.elasticache.ReplicationGroup(
            "redis",
            description="lambdarec Feast online store",
            engine="redis",
            engine_version=args.redis.engine_version,
            node_type=args.redis.node_type,
            num_cache_clusters=1 + args.redis.replicas,
            automatic_failover_enabled=args.redis.replicas > 0,
            port=port,
            subnet_group_name=subnets.name,
            security_group_ids=[network.security_group.id],
            transit_encryption_enabled=True,
            at_rest_encryption_enabled=True,
            auth_token=pulumi.Output.secret(auth_token),
            tags={"project": "lambdarec"},
            opts=child,
        )
        # Feast's Redis connection string: host:port,password=...,ssl=true (secret: it holds the token).
        self.url: pulumi.Output[str] = pulumi.Output.secret(
            pulumi.Output.concat(self.group.primary_endpoint_address, f":{port},password=", auth_token, ",ssl=true")
        )
        self.register_outputs({"endpoint": self.group.primary_endpoint_address})


class KubernetesCluster(pulumi.ComponentResource):
    """EKS with one managed node group, and a provider for the workloads on it."""

    def __init__(self, name: str, args: AwsArgs, network: Network, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("lambdarec:aws:KubernetesCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cluster_role = aws.iam.Role("eks-cluster", assume_role_policy=_assume("eks.amazonaws.com"), opts=child)
        aws.iam.RolePolicyAttachment(
            "eks-cluster",
            role=cluster_role.name,
            policy_arn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",
            opts=child,
        )
        self.node_role = aws.iam.Role("eks-nodes", assume_role_policy=_assume("ec2.amazonaws.com"), opts=child)
        for policy in ("AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"):
            aws.iam.RolePolicyAttachment(
                f"eks-nodes-{policy}",
                role=self.node_role.name,
                policy_arn=f"arn:aws:iam::aws:policy/{policy}",
                opts=child,
            )
        self.cluster = aws.eks.Cluster(
            "eks",
            role_arn=cluster_role.arn,
            version=args.eks_version,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=network.subnet_ids,
                security_group_ids=[network.security_group.id],
                endpoint_private_access=True,
            ),
            access_config=aws.eks.ClusterAccessConfigArgs(authentication_mode="API_AND_CONFIG_MAP"),
            opts=child,
        )
        self.nodes = aws.eks.NodeGroup(
            "nodes",
            cluster_name=self.cluster.name,
            node_role_arn=self.node_role.arn,
            subnet_ids=network.subnet_ids,
            instance_types=[args.node_instance_type],
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                desired_size=args.node_count, min_size=1, max_size=max(args.node_count, 2) * 2
            ),
            opts=child,
        )
        kubeconfig = pulumi.Output.all(
            self.cluster.endpoint, self.cluster.certificate_authority.data, self.cluster.name
        ).apply(lambda v: _kubeconfig(v[0], v[1], v[2], args.region))
        self.provider = k8s.Provider(
            "eks", kubeconfig=kubeconfig, opts=pulumi.ResourceOptions(parent=self, depends_on=[self.nodes])
        )
        self.namespace = k8s.core.v1.Namespace(
            NAMESPACE,
            metadata=k8s.meta.v1.ObjectMetaArgs(name=NAMESPACE),
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider),
        )
        self.register_outputs({"cluster": self.cluster.name, "endpoint": self.cluster.endpoint})


def _kubeconfig(endpoint: str, ca: str, cluster: str, region: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": cluster, "cluster": {"server": endpoint, "certificate-authority-data": ca}}],
            "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": cluster}}],
            "current-context": cluster,
            "users": [
                {
                    "name": cluster,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": ["eks", "get-token", "--cluster-name", cluster, "--region", region],
                        }
                    },
                }
            ],
        }
    )


@dataclass
class K8sWorkloadArgs:
    """Arguments of :class:`K8sWorkload`: a topology service as a Deployment (+ Service).

    Attributes:
        service: The topology service (name, ports).
        image: Its image.
        env: Its environment (from :func:`components.wiring.service_env`).
        command: Overrides the image's command.
        replicas: Pods.
        expose: A load balancer in front (else a ClusterIP Service).
        cpu: CPU request.
        memory: Memory request.
    """

    service: topology.Service
    image: pulumi.Input[str]
    env: Mapping[str, pulumi.Input[str]]
    command: list[Any] | None = None
    replicas: int = 1
    expose: bool = False
    cpu: str = "500m"
    memory: str = "1Gi"


class K8sWorkload(pulumi.ComponentResource):
    """A Deployment of one topology service, its ports from the topology, secrets through a Secret."""

    def __init__(
        self,
        name: str,
        args: K8sWorkloadArgs,
        cluster: KubernetesCluster,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("lambdarec:aws:K8sWorkload", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=cluster.provider)
        spec = args.service
        labels = {"app": spec.name}
        secret_values = {k: v for k, v in args.env.items() if k in _SECRET_ENV}
        secret = (
            k8s.core.v1.Secret(
                f"{spec.name}-env",
                metadata=k8s.meta.v1.ObjectMetaArgs(namespace=NAMESPACE),
                string_data={k: pulumi.Output.secret(v) for k, v in secret_values.items()},
                opts=child,
            )
            if secret_values
            else None
        )
        self.deployment = k8s.apps.v1.Deployment(
            spec.name,
            metadata=k8s.meta.v1.ObjectMetaArgs(name=spec.name, namespace=NAMESPACE, labels=labels),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=args.replicas,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                    spec=k8s.core.v1.PodSpecArgs(
                        containers=[
                            k8s.core.v1.ContainerArgs(
                                name=spec.name,
                                image=args.image,
                                command=args.command,
                                env=_k8s_env(args.env, secret),
                                ports=[
                                    k8s.core.v1.ContainerPortArgs(
                                        name=p.name.replace("_", "-"), container_port=p.number
                                    )
                                    for p in spec.ports
                                ],
                                resources=k8s.core.v1.ResourceRequirementsArgs(
                                    requests={"cpu": args.cpu, "memory": args.memory}
                                ),
                                # Scratch only (metrics file, caches): durable state is on S3 / Redis / RDS.
                                volume_mounts=[k8s.core.v1.VolumeMountArgs(name="scratch", mount_path=STATE_DIR)],
                            )
                        ],
                        volumes=[
                            k8s.core.v1.VolumeArgs(name="scratch", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs())
                        ],
                    ),
                ),
            ),
            opts=child,
        )
        self.service: k8s.core.v1.Service | None = None
        if spec.ports:
            self.service = k8s.core.v1.Service(
                spec.name,
                metadata=k8s.meta.v1.ObjectMetaArgs(name=spec.name, namespace=NAMESPACE),
                spec=k8s.core.v1.ServiceSpecArgs(
                    selector=labels,
                    type="LoadBalancer" if args.expose else "ClusterIP",
                    ports=[
                        k8s.core.v1.ServicePortArgs(name=p.name.replace("_", "-"), port=p.number, target_port=p.number)
                        for p in spec.ports
                    ],
                ),
                opts=child,
            )
        self.register_outputs({"deployment": self.deployment.metadata.name})


def in_cluster_host(service: str) -> str:
    """The DNS name of a Service in the stack's namespace."""
    return f"{service}.{NAMESPACE}.svc.cluster.local"


class VectorStore(pulumi.ComponentResource):
    """Milvus from its Helm chart (standalone or cluster mode)."""

    def __init__(
        self, name: str, args: StackArgs, cluster: KubernetesCluster, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("lambdarec:aws:VectorStore", name, None, opts)
        self.release = k8s.helm.v3.Release(
            names.MILVUS_SERVICE,
            name=names.MILVUS_SERVICE,
            namespace=NAMESPACE,
            chart="milvus",
            version=args.milvus.chart_version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo="https://zilliztech.github.io/milvus-helm/"),
            values={
                "cluster": {"enabled": args.milvus.cluster_mode},
                "image": {"all": {"tag": args.milvus.image.rsplit(":", 1)[-1]}},
                "service": {"port": topology.MILVUS.port("port").number},
                "pulsar": {"enabled": False},
                "pulsarv3": {"enabled": False},
                "kafka": {"enabled": False},
            },
            opts=pulumi.ResourceOptions(parent=self, provider=cluster.provider, depends_on=[cluster.namespace]),
        )
        self.uri = topology.MILVUS.address(in_cluster_host(names.MILVUS_SERVICE))
        self.register_outputs({"uri": self.uri})


class Tracking(pulumi.ComponentResource):
    """MLflow on EKS with RDS Postgres (password from a Pulumi secret) and S3 artifacts."""

    def __init__(
        self,
        name: str,
        args: StackArgs,
        network: Network,
        cluster: KubernetesCluster,
        storage: Storage,
        image: pulumi.Input[str],
        password: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("lambdarec:aws:Tracking", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        subnets = aws.rds.SubnetGroup("mlflow-db", subnet_ids=network.subnet_ids, opts=child)
        self.database = aws.rds.Instance(
            topology.MLFLOW_DB_SERVICE,
            engine="postgres",
            engine_version="17",
            instance_class=args.mlflow.db_instance_class,
            allocated_storage=args.mlflow.db_storage_gb,
            db_name="mlflow",
            username="mlflow",
            password=pulumi.Output.secret(password),
            port=topology.MLFLOW_DB.port("port").number,
            db_subnet_group_name=subnets.name,
            vpc_security_group_ids=[network.security_group.id],
            storage_encrypted=True,
            skip_final_snapshot=False,
            final_snapshot_identifier="lambdarec-mlflow-final",
            opts=child,
        )
        env = service_env(
            names.MLFLOW_SERVICE,
            hosts={topology.MLFLOW_DB_SERVICE: self.database.address},
            extra={"PGPASSWORD": password},
        )
        port = topology.MLFLOW.port("port").number
        host = in_cluster_host(names.MLFLOW_SERVICE)
        self.workload = K8sWorkload(
            names.MLFLOW_SERVICE,
            K8sWorkloadArgs(
                topology.MLFLOW,
                image,
                env,
                command=[
                    "mlflow",
                    "server",
                    "--serve-artifacts",
                    "--artifacts-destination",
                    storage.buckets["artifacts"].bucket.apply(lambda b: f"s3://{b}/mlflow"),  # type: ignore[list-item]
                    "--default-artifact-root",
                    "mlflow-artifacts:/",
                    "--host",
                    "0.0.0.0",
                    "--port",
                    str(port),
                    "--allowed-hosts",
                    f"{host},{host}:{port},{names.MLFLOW_SERVICE},{names.MLFLOW_SERVICE}:{port}",
                ],
            ),
            cluster,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.database, cluster.namespace]),
        )
        self.uri = topology.MLFLOW.address(host)
        self.register_outputs({"uri": self.uri})


class StreamJob(pulumi.ComponentResource):
    """The speed layer: the Flink Kubernetes Operator and one FlinkDeployment of our job."""

    def __init__(
        self,
        name: str,
        args: StackArgs,
        cluster: KubernetesCluster,
        storage: Storage,
        kafka: Kafka,
        image: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("lambdarec:aws:StreamJob", name, None, opts)
        provider_opts = pulumi.ResourceOptions(parent=self, provider=cluster.provider, depends_on=[cluster.namespace])
        self.operator = k8s.helm.v3.Release(
            "flink-operator",
            name="flink-kubernetes-operator",
            namespace=NAMESPACE,
            chart="flink-kubernetes-operator",
            version=args.flink.operator_chart_version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(
                repo=f"https://downloads.apache.org/flink/flink-kubernetes-operator-{args.flink.operator_chart_version}/"
            ),
            values={"webhook": {"create": False}},
            opts=provider_opts,
        )
        env = service_env(
            names.STREAM_JOB_SERVICE,
            overrides={names.KAFKA_SERVICE: {topology.KAFKA_BOOTSTRAP_ENV: kafka.bootstrap}},
        )
        state_dir = storage.buckets["lake"].bucket.apply(lambda b: f"s3://{b}/stream")
        job_args = pulumi.Output.all(kafka.bootstrap, state_dir).apply(
            lambda v: [
                "--bootstrap",
                v[0],
                "--state-dir",
                v[1],
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
        )
        self.deployment = k8s.apiextensions.CustomResource(
            names.STREAM_JOB_SERVICE,
            api_version="flink.apache.org/v1beta1",
            kind="FlinkDeployment",
            metadata=k8s.meta.v1.ObjectMetaArgs(name=names.STREAM_JOB_SERVICE, namespace=NAMESPACE),
            spec={
                "image": image,
                "flinkVersion": "v2_2",
                "serviceAccount": "flink",
                "flinkConfiguration": {
                    "taskmanager.numberOfTaskSlots": str(args.flink.task_slots),
                    "rest.port": str(topology.STREAM_JOB.port("rest_port").number),
                    "state.checkpoints.dir": state_dir,
                },
                "podTemplate": {
                    "spec": {
                        "containers": [
                            {"name": "flink-main-container", "env": [{"name": k, "value": v} for k, v in env.items()]}
                        ]
                    }
                },
                "jobManager": {"resource": {"memory": args.flink.jobmanager_memory, "cpu": 1}},
                "taskManager": {
                    "replicas": args.flink.task_managers,
                    "resource": {"memory": args.flink.taskmanager_memory, "cpu": 1},
                },
                "job": {
                    "jarURI": "local:///opt/flink/opt/flink-python.jar",
                    "entryClass": "org.apache.flink.client.python.PythonDriver",
                    "args": pulumi.Output.from_input(job_args).apply(
                        lambda a: ["-py", "/opt/lambdarec/job/speed_layer.py", "-pyfs", "/opt/lambdarec/job/pylib", *a]
                    ),
                    "parallelism": args.flink.parallelism,
                    "upgradeMode": "last-state",
                },
            },
            opts=pulumi.ResourceOptions(
                parent=self, provider=cluster.provider, depends_on=[self.operator, kafka.cluster]
            ),
        )
        self.register_outputs({"job": names.STREAM_JOB_SERVICE, "state_dir": state_dir})


class BatchCompute(pulumi.ComponentResource):
    """EMR Serverless (Spark) running the packaged jobs from our Spark image, reading the lake."""

    def __init__(
        self,
        name: str,
        args: StackArgs,
        network: Network,
        storage: Storage,
        image: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("lambdarec:aws:BatchCompute", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.job_role = aws.iam.Role("emr-job", assume_role_policy=_assume("emr-serverless.amazonaws.com"), opts=child)
        aws.iam.RolePolicy(
            "emr-job-lake",
            role=self.job_role.id,
            policy=storage.buckets["lake"].arn.apply(
                lambda arn: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"],
                                "Resource": [arn, f"{arn}/*"],
                            }
                        ],
                    }
                )
            ),
            opts=child,
        )
        self.application = aws.emrserverless.Application(
            topology.SPARK_SERVICE,
            name="lambdarec-batch",
            release_label=args.spark.release_label,
            type="spark",
            image_configuration=aws.emrserverless.ApplicationImageConfigurationArgs(image_uri=image),
            maximum_capacity=aws.emrserverless.ApplicationMaximumCapacityArgs(
                cpu=f"{args.spark.max_vcpu} vCPU", memory=f"{args.spark.max_memory_gb} GB"
            ),
            network_configuration=aws.emrserverless.ApplicationNetworkConfigurationArgs(
                subnet_ids=network.subnet_ids, security_group_ids=[network.security_group.id]
            ),
            auto_stop_configuration=aws.emrserverless.ApplicationAutoStopConfigurationArgs(
                enabled=True, idle_timeout_minutes=15
            ),
            opts=child,
        )
        self.register_outputs({"application_id": self.application.id})


class Scheduler(pulumi.ComponentResource):
    """MWAA with our DAGs (``dags/*.py`` uploaded to S3) and the topology's variables."""

    def __init__(
        self,
        name: str,
        args: StackArgs,
        network: Network,
        storage: Storage,
        env: Mapping[str, pulumi.Input[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("lambdarec:aws:Scheduler", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        bucket = storage.buckets["airflow"]
        self.dag_objects = [
            aws.s3.BucketObjectv2(
                f"dag-{path.stem}",
                bucket=bucket.id,
                key=f"dags/{path.name}",
                source=pulumi.FileAsset(str(path)),
                opts=child,
            )
            for path in sorted((REPO_ROOT / "dags").glob("*.py"))
        ]
        role = aws.iam.Role("mwaa", assume_role_policy=_assume("airflow-env.amazonaws.com"), opts=child)
        # What MWAA itself needs: its bucket, its logs and metrics, the Celery queue it creates.
        aws.iam.RolePolicy(
            "mwaa",
            role=role.id,
            policy=bucket.arn.apply(
                lambda arn: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": ["s3:GetObject*", "s3:GetBucket*", "s3:List*"],
                                "Resource": [arn, f"{arn}/*"],
                            },
                            {
                                "Effect": "Allow",
                                "Action": ["airflow:PublishMetrics", "cloudwatch:PutMetricData"],
                                "Resource": "*",
                            },
                            {
                                "Effect": "Allow",
                                "Action": [
                                    "logs:CreateLogStream",
                                    "logs:CreateLogGroup",
                                    "logs:PutLogEvents",
                                    "logs:GetLogEvents",
                                    "logs:GetLogRecord",
                                    "logs:GetLogGroupFields",
                                    "logs:GetQueryResults",
                                    "logs:DescribeLogGroups",
                                ],
                                "Resource": "arn:aws:logs:*:*:log-group:airflow-lambdarec-*",
                            },
                            {
                                "Effect": "Allow",
                                "Action": [
                                    "sqs:ChangeMessageVisibility",
                                    "sqs:DeleteMessage",
                                    "sqs:GetQueueAttributes",
                                    "sqs:GetQueueUrl",
                                    "sqs:ReceiveMessage",
                                    "sqs:SendMessage",
                                ],
                                "Resource": "arn:aws:sqs:*:*:airflow-celery-*",
                            },
                        ],
                    }
                )
            ),
            opts=child,
        )
        # MWAA runs this script on every worker before Airflow starts: the topology's variables reach
        # the DAGs as in the other stacks. Secrets stay out of it (the DAGs read them from Secrets Manager).
        plain = {k: v for k, v in env.items() if k not in _SECRET_ENV}
        keys = sorted(plain)
        self.startup_script = aws.s3.BucketObjectv2(
            "startup",
            bucket=bucket.id,
            key="startup.sh",
            content=pulumi.Output.all(*[plain[k] for k in keys]).apply(
                lambda values: "#!/bin/sh\n" + "".join(f"export {k}='{v}'\n" for k, v in zip(keys, values, strict=True))
            ),
            opts=child,
        )
        self.environment = aws.mwaa.Environment(
            topology.AIRFLOW_SERVICE,
            name="lambdarec",
            airflow_version=args.airflow.airflow_version,
            environment_class=args.airflow.environment_class,
            max_workers=args.airflow.max_workers,
            source_bucket_arn=bucket.arn,
            dag_s3_path="dags/",
            execution_role_arn=role.arn,
            network_configuration=aws.mwaa.EnvironmentNetworkConfigurationArgs(
                subnet_ids=network.subnet_ids[:2], security_group_ids=[network.security_group.id]
            ),
            startup_script_s3_path=self.startup_script.key,
            startup_script_s3_object_version=self.startup_script.version_id,
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.dag_objects),
        )
        self.register_outputs({"webserver_url": self.environment.webserver_url})


class AwsStack(pulumi.ComponentResource):
    """The whole pipeline on AWS."""

    def __init__(
        self,
        name: str,
        args: StackArgs,
        secrets: Mapping[str, pulumi.Input[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("lambdarec:aws:AwsStack", name, None, opts)
        assert args.aws is not None  # checked by load_stack_config
        child = pulumi.ResourceOptions(parent=self)
        self.network = Network("network", args.aws, opts=child)
        self.storage = Storage("storage", opts=child)
        token = aws.ecr.get_authorization_token_output()
        self.images = OwnImages(
            "images",
            OwnImagesArgs(
                args.images,
                platform="aws",
                repositories={k: r.repository_url for k, r in self.storage.repositories.items()},
                registry=docker.RegistryArgs(
                    server=token.proxy_endpoint, username=token.user_name, password=token.password
                ),
            ),
            opts=child,
        )
        img = self.images.refs
        self.kafka = Kafka(names.KAFKA_SERVICE, args, self.network, opts=child)
        self.online_store = OnlineStore(
            topology.REDIS_SERVICE, args, self.network, secrets["redisAuthToken"], opts=child
        )
        self.kubernetes = KubernetesCluster("kubernetes", args.aws, self.network, opts=child)
        # Workloads on the nodes (MLflow's artifacts, the Flink checkpoints, the pusher) use the lake buckets.
        aws.iam.RolePolicy(
            "eks-nodes-buckets",
            role=self.kubernetes.node_role.id,
            policy=pulumi.Output.all(self.storage.buckets["lake"].arn, self.storage.buckets["artifacts"].arn).apply(
                lambda arns: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"],
                                "Resource": [x for arn in arns for x in (arn, f"{arn}/*")],
                            }
                        ],
                    }
                )
            ),
            opts=child,
        )
        self.vector_store = VectorStore(names.MILVUS_SERVICE, args, self.kubernetes, opts=child)
        self.tracking = Tracking(
            names.MLFLOW_SERVICE,
            args,
            self.network,
            self.kubernetes,
            self.storage,
            img["mlflow"],
            secrets["postgresPassword"],
            opts=child,
        )
        self.stream_job = StreamJob(
            names.STREAM_JOB_SERVICE, args, self.kubernetes, self.storage, self.kafka, img["flink-job"], opts=child
        )
        self.batch = BatchCompute(
            topology.SPARK_SERVICE, args, self.network, self.storage, img["spark-jobs"], opts=child
        )

        lake = self.storage.buckets["lake"].bucket
        overrides: dict[str, Mapping[str, pulumi.Input[str]]] = {
            names.KAFKA_SERVICE: {topology.KAFKA_BOOTSTRAP_ENV: self.kafka.bootstrap},
            topology.REDIS_SERVICE: {topology.REDIS_URL_ENV: self.online_store.url},
            names.MILVUS_SERVICE: {topology.MILVUS_URI_ENV: self.vector_store.uri},
            names.MLFLOW_SERVICE: {topology.MLFLOW_URI_ENV: self.tracking.uri},
            topology.SPARK_SERVICE: {
                topology.SPARK_MASTER_ENV: self.batch.application.id.apply(lambda i: f"emr-serverless://{i}")
            },
        }
        platform_env: dict[str, pulumi.Input[str]] = {
            "LAMBDAREC_ENV": args.settings_env,
            "LAMBDAREC_SECRET_KEY": pulumi.Output.secret(secrets["secretKey"]),
            "LAMBDAREC_LAKE_DIR": lake.apply(lambda b: f"s3://{b}/lake"),
            # Feast's registry is shared by the pusher, the recommender and the DAGs: on S3.
            "FEAST_DIR": lake.apply(lambda b: f"s3://{b}/feast"),
            "LAMBDAREC_STATE_DIR": STATE_DIR,
        }
        pusher_env = service_env(names.STREAM_PUSHER_SERVICE, overrides=overrides, extra=platform_env)
        self.pusher = K8sWorkload(
            names.STREAM_PUSHER_SERVICE,
            K8sWorkloadArgs(
                topology.STREAM_PUSHER,
                img["recommender"],
                pusher_env,
                command=pusher_command(self.kafka.bootstrap, args.settings_env),
            ),
            self.kubernetes,
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[self.kafka, self.online_store, self.stream_job, self.kubernetes.namespace]
            ),
        )
        self.recommender = K8sWorkload(
            topology.RECOMMENDER_SERVICE,
            K8sWorkloadArgs(
                topology.RECOMMENDER,
                img["recommender"],
                service_env(topology.RECOMMENDER_SERVICE, overrides=overrides, extra=platform_env),
                replicas=args.recommender.replicas,
                expose=True,
                cpu=args.recommender.cpu,
                memory=args.recommender.memory,
            ),
            self.kubernetes,
            # Start-up order from the topology: Redis, Milvus and MLflow before the recommender.
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[self.online_store, self.vector_store, self.tracking, self.kubernetes.namespace],
            ),
        )
        self.scheduler = Scheduler(
            topology.AIRFLOW_SERVICE,
            args,
            self.network,
            self.storage,
            service_env(topology.AIRFLOW_SERVICE, overrides=overrides, extra=platform_env),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[self.kafka, self.batch, self.online_store, self.tracking, self.vector_store],
            ),
        )
        self.register_outputs(
            {
                "kafka_bootstrap": self.kafka.bootstrap,
                "lake_bucket": lake,
                "milvus_uri": self.vector_store.uri,
                "mlflow_uri": self.tracking.uri,
                "airflow_url": self.scheduler.environment.webserver_url,
            }
        )
