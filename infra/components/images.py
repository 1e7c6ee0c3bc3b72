"""Our own images, built from this repository's Dockerfiles.

Each Dockerfile sits next to what it packages and copies the artifacts the project's own
packaging writes into ``dist/`` (``lambdarec batch package``, ``jobs/flink/package.py``);
:func:`missing_artifacts` names the command for each one that is not built yet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_docker as docker

from components.config import ImagesArgs
from components.wiring import REPO_ROOT


@dataclass(frozen=True)
class ImageSpec:
    """One image: its Dockerfile (relative to the repo root) and the artifacts it copies."""

    key: str
    dockerfile: str
    artifacts: tuple[tuple[str, str], ...] = ()  # (glob under the repo root, command that makes it)
    targets: dict[str, str] = field(default_factory=dict)  # build target by platform ("local", "aws")


FLINK_JOB = ImageSpec(
    "flink-job",
    "jobs/flink/Dockerfile",
    (("dist/lambdarec-flink-job.zip", "jobs/flink/.venv/bin/python jobs/flink/package.py"),),
)
SPARK_JOBS = ImageSpec(
    "spark-jobs",
    "jobs/spark/Dockerfile",
    (
        ("dist/lambdarec_spark_jobs-*.zip", ".venv/bin/lambdarec batch package"),
        ("dist/run_job.py", ".venv/bin/lambdarec batch package"),
        (".cache/jars/spark/spark-sql-kafka-*.jar", "make setup"),
    ),
    # EMR Serverless runs only images built on its own base image.
    targets={"local": "standalone", "aws": "emr-serverless"},
)
RECOMMENDER = ImageSpec("recommender", "bentos/Dockerfile")
AIRFLOW = ImageSpec("airflow", "dags/Dockerfile")
MLFLOW = ImageSpec("mlflow", "infra/images/mlflow/Dockerfile")

IMAGES: tuple[ImageSpec, ...] = (FLINK_JOB, SPARK_JOBS, RECOMMENDER, AIRFLOW, MLFLOW)


def missing_artifacts(root: Path = REPO_ROOT) -> list[str]:
    """What the images need that is not built yet, each with the command that builds it."""
    return [
        f"{pattern} (run `{command}`)"
        for spec in IMAGES
        for pattern, command in spec.artifacts
        if not any(root.glob(pattern))
    ]


@dataclass
class OwnImagesArgs:
    """Arguments of :class:`OwnImages`.

    Attributes:
        config: Tag, platform and name prefix (validated stack configuration).
        platform: ``local`` or ``aws``: picks each Dockerfile's build target.
        repositories: Per image key, the repository to push to (ECR URLs in the cloud); None keeps
            the images local (``<prefix>/<key>:<tag>``, not pushed).
        registry: Credentials of that registry.
    """

    config: ImagesArgs
    platform: str = "local"
    repositories: dict[str, pulumi.Input[str]] | None = None
    registry: docker.RegistryArgs | None = None


class OwnImages(pulumi.ComponentResource):
    """Builds (and, with a registry, pushes) every image of :data:`IMAGES`."""

    def __init__(self, name: str, args: OwnImagesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("lambdarec:images:OwnImages", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.images: dict[str, docker.Image] = {}
        self.refs: dict[str, pulumi.Output[str]] = {}
        for spec in IMAGES:
            repo = (args.repositories or {}).get(spec.key)
            image_name = (
                pulumi.Output.concat(repo, ":", args.config.tag)
                if repo is not None
                else pulumi.Output.from_input(f"{args.config.prefix}/{spec.key}:{args.config.tag}")
            )
            image = docker.Image(
                spec.key,
                image_name=image_name,
                build=docker.DockerBuildArgs(
                    context=str(REPO_ROOT),
                    dockerfile=str(REPO_ROOT / spec.dockerfile),
                    platform=args.config.platform,
                    target=spec.targets.get(args.platform),
                ),
                registry=args.registry,
                skip_push=repo is None,
                opts=child,
            )
            self.images[spec.key] = image
            self.refs[spec.key] = image.image_name
        self.register_outputs({"images": self.refs})
