"""Pulumi mocks that record every resource, its inputs and its ``depends_on``.

``build(platform)`` declares one stack under :func:`pulumi.runtime.set_mocks` and returns a
:class:`Recording`: plain data the tests read like policies. Managed resources get the outputs
a real provider would compute (bootstrap brokers, endpoints, repository URLs).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pulumi

# Values of the test secrets: none of them may appear outside a secret.
SECRETS = {
    "postgresPassword": "pg-Secret-4f1c",
    "secretKey": "app-Secret-9a7e",
    "redisAuthToken": "redis-Secret-77d0-0123456789",
}
# The marker Pulumi's wire format puts on a secret value.
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
SIG_KEY = "4dabf18193072939515e22adb298388d"

FAKE_OUTPUTS: dict[str, dict[str, Any]] = {
    "aws:msk/cluster:Cluster": {"bootstrapBrokers": "b-1.msk.internal:9092,b-2.msk.internal:9092"},
    "aws:elasticache/replicationGroup:ReplicationGroup": {"primaryEndpointAddress": "master.redis.cache.internal"},
    "aws:rds/instance:Instance": {"address": "mlflow-db.rds.internal"},
    "aws:eks/cluster:Cluster": {
        "endpoint": "https://eks.internal",
        "certificateAuthority": {"data": "Q0E="},
        "name": "lambdarec-eks",
    },
    "aws:mwaa/environment:Environment": {"webserverUrl": "airflow.mwaa.internal"},
    "aws:emrserverless/application:Application": {"id": "00abc"},
    "aws:s3/bucketObjectv2:BucketObjectv2": {"versionId": "v1"},
}


@dataclass
class Resource:
    """One declared resource."""

    typ: str
    name: str
    inputs: dict[str, Any]
    depends_on: list[str] = field(default_factory=list)
    parent: str | None = None


class Recorder(pulumi.runtime.Mocks):
    """Records resources; answers the invokes the program makes."""

    def __init__(self) -> None:
        self.resources: dict[str, Resource] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        outputs = dict(args.inputs)
        outputs.update(FAKE_OUTPUTS.get(args.typ, {}))
        if args.typ == "aws:ecr/repository:Repository":
            outputs["repositoryUrl"] = f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/{args.inputs['name']}"
        if args.typ == "aws:s3/bucket:Bucket":
            outputs["bucket"] = f"{args.inputs.get('bucketPrefix', args.name)}bucket"
            outputs["arn"] = f"arn:aws:s3:::{outputs['bucket']}"
        if args.typ.startswith("aws:iam/role:"):
            outputs["arn"] = f"arn:aws:iam::123456789012:role/{args.name}"
            outputs["name"] = args.name
        if args.typ == "aws:msk/configuration:Configuration":
            outputs["arn"], outputs["latestRevision"] = "arn:aws:kafka:configuration/broker", 1
        if args.typ == "docker:index/volume:Volume" and "name" not in outputs:
            outputs["name"] = args.name
        entry = self.resources.setdefault(_key(args.typ, args.name), Resource(args.typ, args.name, {}))
        entry.inputs = dict(args.inputs)
        return f"{args.name}-id", outputs

    # A plain dict: the SDK accepts it (its annotation asks for a tuple whose None it cannot iterate).
    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        if args.token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            return {
                "proxyEndpoint": "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com",
                "userName": "AWS",
                "password": "ecr-token",
                "authorizationToken": "ecr-token",
                "expiresAt": "2030-01-01T00:00:00Z",
                "id": "eu-west-1",
            }
        return {}

    # -- reading the recording ------------------------------------------------------------------
    def of_type(self, typ: str) -> list[Resource]:
        """Every resource of one type token."""
        return [r for r in self.resources.values() if r.typ == typ]

    def get(self, name: str, typ: str = "docker:index/container:Container") -> Resource:
        """One resource by name (a container unless ``typ`` says otherwise)."""
        return self.resources[_key(typ, name)]

    def depends_on_closure(self, name: str, typ: str = "docker:index/container:Container") -> set[str]:
        """Names of everything ``name`` waits for, directly or through what it waits for.

        A component in the closure brings its children in (Pulumi waits for all of them).
        """
        seen: set[str] = set()
        todo = list(self.get(name, typ).depends_on)
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            resource = self.resources.get(current)
            if resource is not None:
                todo.extend(resource.depends_on)
                todo.extend(k for k, r in self.resources.items() if r.parent == current)
        return {self.resources[k].name if k in self.resources else k for k in seen}


def _key(typ: str, name: str) -> str:
    return f"{typ}::{name}"


def _key_of(resource: Any) -> str:
    return _key(getattr(resource, "_type", "?"), getattr(resource, "_name", str(resource)))


def _record_options(recorder: Recorder) -> pulumi.ResourceTransformation:
    def record(args: pulumi.ResourceTransformationArgs) -> None:
        opts = args.opts
        deps = opts.depends_on if opts is not None and isinstance(opts.depends_on, list) else []
        entry = recorder.resources.setdefault(_key(args.type_, args.name), Resource(args.type_, args.name, {}))
        entry.depends_on = [_key_of(d) for d in deps]
        entry.parent = _key_of(opts.parent) if opts is not None and opts.parent is not None else None
        return None

    return record


def build(platform: str) -> tuple[Recorder, Any]:
    """Declare one stack on mocks; returns the recording and the top component."""
    import yaml

    from components.config import load_stack_config
    from components.wiring import REPO_ROOT

    recorder = Recorder()
    pulumi.runtime.set_mocks(recorder, project="lambdarec", stack=platform, preview=False)
    pulumi.runtime.register_stack_transformation(_record_options(recorder))
    raw = yaml.safe_load((REPO_ROOT / "infra" / f"Pulumi.{platform}.yaml").read_text())["config"]
    args = load_stack_config({k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith("lambdarec:")})
    secrets = {k: pulumi.Output.secret(v) for k, v in SECRETS.items()}
    holder: dict[str, Any] = {}

    @pulumi.runtime.test
    def declare() -> pulumi.Output[Any]:
        if platform == "local":
            from components.local import LocalStack

            holder["stack"] = LocalStack("lambdarec", args, secrets)
            return pulumi.Output.from_input(holder["stack"].network.name)
        from components.aws import AwsStack

        holder["stack"] = AwsStack("lambdarec", args, secrets)
        return pulumi.Output.from_input(holder["stack"].kafka.bootstrap)

    declare()
    return recorder, holder["stack"]


def walk_plain_strings(value: Any) -> Iterator[str]:
    """Every string in a resource's inputs that is not inside a secret."""
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return
        for item in value.values():
            yield from walk_plain_strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from walk_plain_strings(item)
    elif isinstance(value, str):
        yield value
