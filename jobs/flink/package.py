"""Build the deployable speed-layer artifact: ``dist/lambdarec-flink-job.zip``.

The archive holds everything ``flink run`` needs, so a Flink 2.2 cluster (Python 3.11 on
linux x86_64 on its nodes) runs the job unchanged::

    speed_layer.py                                 the job (entry point)
    flink-sql-connector-kafka-5.0.0-2.2.jar        the Kafka connector
    lambdarec-flink-udfs.jar                       RECENT_ITEMS, the job's Java aggregate (udf/)
    pylib/lambdarec/                               the lambdarec core package (this checkout)
    pylib/orjson, pylib/pydantic, ...              its runtime dependencies, from jobs/flink/.venv
    requirements.txt                               the same dependencies, pinned (for -pyreq instead)
    MANIFEST.json                                  versions and the run command

Run it on a session cluster (after ``unzip lambdarec-flink-job.zip -d job && cd job``)::

    flink run -m <jobmanager>:8081 -d -p 2 -pyexec <python3.11 with apache-flink> \\
        --python speed_layer.py --pyFiles pylib \\
        --jarfile flink-sql-connector-kafka-5.0.0-2.2.jar --classpath file://$PWD/lambdarec-flink-udfs.jar \\
        -- --bootstrap broker:9092 --state-dir s3://bucket/lambdarec/stream --python-executable ''

(add ``-s <state-dir>/checkpoints/<job-id>/chk-N`` to resume from a retained checkpoint). The cluster's
``lib/`` must hold ``flink-python-2.2.x.jar`` (from ``opt/``, as PyFlink's images do), or it refuses the
job's Python operator; ``lambdarec --profile cluster`` runs exactly this line against its own session
cluster (``lambdarec.stream.session_job``).

Usage: ``jobs/flink/.venv/bin/python jobs/flink/package.py [--out dist/lambdarec-flink-job.zip]``;
``--udf-jar-only DIR`` builds just the aggregate's jar (``make setup`` does, into ``.cache/jars/flink``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
JAR_NAME = "flink-sql-connector-kafka-5.0.0-2.2.jar"
UDF_JAR_NAME = "lambdarec-flink-udfs.jar"
UDF_SOURCES = HERE / "udf"
# The core's runtime imports used by the job (names, schemas, the session fold, the DLQ format).
RUNTIME_DISTRIBUTIONS = (
    "orjson",
    "pydantic",
    "pydantic-core",
    "typing-extensions",
    "annotated-types",
    "typing-inspection",
)
RUN_COMMAND = (
    "flink run -m <jobmanager-rest> -d -p 2 -pyexec <python> --python speed_layer.py --pyFiles pylib --jarfile "
    + JAR_NAME
    + " --classpath file://$PWD/"
    + UDF_JAR_NAME
    + " -- --bootstrap <brokers> --state-dir <checkpoint-uri-folder> --python-executable ''"
)


def _distribution_files(name: str) -> list[tuple[Path, str]]:
    """(file on disk, path inside pylib/) of an installed distribution, metadata excluded."""
    dist = importlib.metadata.distribution(name)
    out = []
    for entry in dist.files or []:
        parts = Path(str(entry)).parts
        if not parts or parts[0].endswith((".dist-info", ".data")) or parts[0] in ("..", "__pycache__"):
            continue
        if "__pycache__" in parts:
            continue
        out.append((Path(str(dist.locate_file(entry))), str(entry)))
    return out


def _java_tool(name: str) -> str:
    """``javac`` / ``jar`` from ``JAVA_HOME`` or the PATH (a JDK is a prerequisite of the project)."""
    home = os.environ.get("JAVA_HOME")
    found = str(Path(home, "bin", name)) if home and Path(home, "bin", name).is_file() else shutil.which(name)
    if not found:
        raise FileNotFoundError(f"`{name}` not found: install a JDK 17+ (e.g. apt-get install openjdk-17-jdk-headless)")
    return found


def build_udf_jar(out_dir: Path) -> Path:
    """Compile the job's Java aggregate (``udf/``) against the Flink jars PyFlink ships.

    Rebuilt only when a source is newer than the jar. Compiled for Java 11, the oldest JVM
    Flink 2.x runs on.

    Args:
        out_dir: Where ``lambdarec-flink-udfs.jar`` goes.

    Returns:
        The jar's path.
    """
    import pyflink

    jar = out_dir / UDF_JAR_NAME
    sources = sorted(UDF_SOURCES.rglob("*.java"))
    if jar.is_file() and all(src.stat().st_mtime <= jar.stat().st_mtime for src in sources):
        return jar
    flink_lib = Path(pyflink.__file__).resolve().parent / "lib"
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lambdarec-udf-") as classes:
        javac = [_java_tool("javac"), "--release", "11", "-nowarn", "-cp", f"{flink_lib}/*", "-d", classes]
        subprocess.run([*javac, *map(str, sources)], check=True)
        tmp = jar.with_suffix(".tmp")
        subprocess.run([_java_tool("jar"), "cf", str(tmp), "-C", classes, "."], check=True)
        tmp.replace(jar)
    return jar


def build(out: Path, jar: Path | None = None) -> Path:
    """Write the artifact.

    Args:
        out: The zip to write.
        jar: The connector jar (default: the checkout's ``.cache/jars/flink/``).

    Returns:
        The path of the zip.

    Raises:
        FileNotFoundError: The connector jar or a dependency is missing (run ``make setup``).
    """
    jar = jar or ROOT / ".cache" / "jars" / "flink" / JAR_NAME
    if not jar.is_file():
        raise FileNotFoundError(f"connector jar not found at {jar}: run `make setup`")
    core = ROOT / "src" / "lambdarec"
    out.parent.mkdir(parents=True, exist_ok=True)
    versions = {name: importlib.metadata.version(name) for name in RUNTIME_DISTRIBUTIONS}
    tmp = out.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.write(HERE / "speed_layer.py", "speed_layer.py")
        archive.write(jar, JAR_NAME)
        archive.write(build_udf_jar(ROOT / ".cache" / "jars" / "flink"), UDF_JAR_NAME)
        for path in sorted(core.rglob("*.py")):
            if "__pycache__" not in path.parts:
                archive.write(path, f"pylib/lambdarec/{path.relative_to(core)}")
        for name in RUNTIME_DISTRIBUTIONS:
            for path, inside in _distribution_files(name):
                archive.write(path, f"pylib/{inside}")
        archive.writestr("requirements.txt", "".join(f"{n}=={v}\n" for n, v in versions.items()))
        manifest = {
            "job": "speed_layer.py",
            "flink": "2.2.x",
            "python": f"{sys.version_info.major}.{sys.version_info.minor}",
            "connector_jar": JAR_NAME,
            "udf_jar": UDF_JAR_NAME,
            "dependencies": versions,
            "run": RUN_COMMAND,
        }
        archive.writestr("MANIFEST.json", json.dumps(manifest, indent=2))
    tmp.replace(out)
    return out


def main() -> None:
    """Build the artifact and print where it is."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist" / "lambdarec-flink-job.zip")
    parser.add_argument("--jar", type=Path, default=None)
    parser.add_argument(
        "--udf-jar-only", type=Path, default=None, metavar="DIR", help="only build the UDF jar into DIR"
    )
    args = parser.parse_args()
    if args.udf_jar_only:
        print(build_udf_jar(args.udf_jar_only))
        return
    path = build(args.out, args.jar)
    print(f"{path} ({path.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
