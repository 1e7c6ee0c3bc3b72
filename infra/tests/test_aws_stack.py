"""Stack ``aws`` on Pulumi's mocks: every topology service has its managed resource or workload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lambdarec import names
from lambdarec.runtime import topology
from tests.mocks import SECRETS, Recorder, build, walk_plain_strings

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rec() -> Recorder:
    return build("aws")[0]


def _one(rec: Recorder, typ: str) -> Any:
    (resource,) = rec.of_type(typ)
    return resource


def _container(rec: Recorder, name: str) -> dict[str, Any]:
    deployment = rec.get(name, DEPLOYMENT).inputs
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_every_topology_service_is_declared(rec: Recorder) -> None:
    declared = {
        names.KAFKA_SERVICE: "aws:msk/cluster:Cluster",
        names.MILVUS_SERVICE: "kubernetes:helm.sh/v3:Release",
        topology.MLFLOW_DB_SERVICE: "aws:rds/instance:Instance",
        names.MLFLOW_SERVICE: DEPLOYMENT,
        topology.REDIS_SERVICE: "aws:elasticache/replicationGroup:ReplicationGroup",
        names.STREAM_JOB_SERVICE: "kubernetes:flink.apache.org/v1beta1:FlinkDeployment",
        names.STREAM_PUSHER_SERVICE: DEPLOYMENT,
        topology.SPARK_SERVICE: "aws:emrserverless/application:Application",
        topology.AIRFLOW_SERVICE: "aws:mwaa/environment:Environment",
        topology.RECOMMENDER_SERVICE: DEPLOYMENT,
    }
    assert set(declared) == {s.name for s in topology.SERVICES}
    for service, typ in declared.items():
        assert rec.get(service, typ), service
    # The offline store / lake, and the Kubernetes cluster the workloads run on.
    assert len(rec.of_type("aws:s3/bucket:Bucket")) == 3
    assert _one(rec, "aws:eks/cluster:Cluster") and _one(rec, "aws:eks/nodeGroup:NodeGroup")


def test_ports_are_the_topology_ports(rec: Recorder) -> None:
    for name in (names.MLFLOW_SERVICE, topology.RECOMMENDER_SERVICE):
        spec = topology.service(name)
        ports = {p["containerPort"] for p in _container(rec, name)["ports"]}
        assert ports == {p.number for p in spec.ports}
        service_ports = {p["port"] for p in rec.get(name, "kubernetes:core/v1:Service").inputs["spec"]["ports"]}
        assert service_ports == {p.number for p in spec.ports}
    assert rec.get(topology.RECOMMENDER_SERVICE, "kubernetes:core/v1:Service").inputs["spec"]["type"] == "LoadBalancer"
    assert _one(rec, "aws:elasticache/replicationGroup:ReplicationGroup").inputs["port"] == 6379
    assert rec.get(topology.MLFLOW_DB_SERVICE, "aws:rds/instance:Instance").inputs["port"] == 5432


def test_environment_comes_from_the_topology_with_managed_endpoints(rec: Recorder) -> None:
    recommender = _env(_container(rec, topology.RECOMMENDER_SERVICE))
    assert set(topology.client_environment(topology.RECOMMENDER_SERVICE)) <= set(recommender)
    assert recommender[topology.MILVUS_URI_ENV] == "http://milvus.lambdarec.svc.cluster.local:19530"
    assert recommender[topology.MLFLOW_URI_ENV] == "http://mlflow.lambdarec.svc.cluster.local:5000"
    # The Redis URL holds the auth token: it comes from a Kubernetes Secret, not inline.
    assert "secretKeyRef" in recommender[topology.REDIS_URL_ENV]
    pusher = _env(_container(rec, names.STREAM_PUSHER_SERVICE))
    assert pusher[topology.KAFKA_BOOTSTRAP_ENV] == "b-1.msk.internal:9092,b-2.msk.internal:9092"
    assert pusher["FEAST_DIR"] == recommender["FEAST_DIR"] and pusher["FEAST_DIR"].startswith("s3://lambdarec-lake-")
    mlflow = _env(_container(rec, names.MLFLOW_SERVICE))
    assert mlflow[topology.MLFLOW_DB_URI_ENV] == "postgresql://mlflow@mlflow-db.rds.internal:5432/mlflow"
    flink = rec.get(names.STREAM_JOB_SERVICE, "kubernetes:flink.apache.org/v1beta1:FlinkDeployment").inputs
    args = flink["spec"]["job"]["args"]
    assert args[args.index("--bootstrap") + 1] == "b-1.msk.internal:9092,b-2.msk.internal:9092"
    startup = rec.get("startup", "aws:s3/bucketObjectv2:BucketObjectv2").inputs["content"]
    assert f"export {topology.KAFKA_BOOTSTRAP_ENV}='b-1.msk.internal:9092,b-2.msk.internal:9092'" in startup
    assert topology.REDIS_URL_ENV not in startup  # a secret: not in MWAA's startup script


def test_dependencies_order_start_up(rec: Recorder) -> None:
    flink = rec.depends_on_closure(names.STREAM_JOB_SERVICE, "kubernetes:flink.apache.org/v1beta1:FlinkDeployment")
    assert names.KAFKA_SERVICE in flink  # MSK before the Flink job
    recommender = rec.depends_on_closure(topology.RECOMMENDER_SERVICE, "lambdarec:aws:K8sWorkload")
    assert {names.MILVUS_SERVICE, topology.REDIS_SERVICE, names.MLFLOW_SERVICE} <= recommender
    pusher = rec.depends_on_closure(names.STREAM_PUSHER_SERVICE, "lambdarec:aws:K8sWorkload")
    assert {names.KAFKA_SERVICE, names.STREAM_JOB_SERVICE, topology.REDIS_SERVICE} <= pusher


def test_no_secret_outside_a_pulumi_secret(rec: Recorder) -> None:
    for resource in rec.resources.values():
        for text in walk_plain_strings(resource.inputs):
            for key, secret in SECRETS.items():
                assert secret not in text, f"{key} in plain text in {resource.typ} {resource.name}"
    redis = _one(rec, "aws:elasticache/replicationGroup:ReplicationGroup").inputs
    assert redis["transitEncryptionEnabled"] is True and redis["authToken"]


def test_own_images_are_built_here_and_pushed_to_ecr(rec: Recorder) -> None:
    repos = {r.inputs["name"] for r in rec.of_type("aws:ecr/repository:Repository")}
    images = {r.name: r.inputs for r in rec.of_type("docker:index/image:Image")}
    assert repos == {f"lambdarec/{k}" for k in images}
    for key, image in images.items():
        assert image["imageName"].startswith(f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/lambdarec/{key}:")
        assert Path(image["build"]["dockerfile"]).is_file() and image["build"]["context"] == str(REPO)
        assert image.get("skipPush") is False
    assert images["spark-jobs"]["build"]["target"] == "emr-serverless"
    emr = _one(rec, "aws:emrserverless/application:Application").inputs
    assert emr["imageConfiguration"]["imageUri"] == images["spark-jobs"]["imageName"]
    assert _container(rec, topology.RECOMMENDER_SERVICE)["image"] == images["recommender"]["imageName"]


def test_dags_are_uploaded_for_mwaa(rec: Recorder) -> None:
    uploaded = {r.inputs["key"] for r in rec.of_type("aws:s3/bucketObjectv2:BucketObjectv2")}
    assert {f"dags/{p.name}" for p in (REPO / "dags").glob("*.py")} <= uploaded
    mwaa = _one(rec, "aws:mwaa/environment:Environment").inputs
    assert mwaa["dagS3Path"] == "dags/" and mwaa["startupScriptS3Path"] == "startup.sh"
