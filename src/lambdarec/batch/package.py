"""Build the deployable archive of the Spark jobs: ``dist/lambdarec_spark_jobs-<version>.zip``.

The archive holds the ``lambdarec`` package and the job entry points (as
``lambdarec_spark_jobs.<job>``); ``run_job.py`` beside it is the file ``spark-submit`` runs::

    spark-submit --master <url> --py-files dist/lambdarec_spark_jobs-0.1.0.zip \\
        dist/run_job.py build_silver --state-dir /data/lambdarec --date 2024-01-30

The cluster's Python needs the third-party libraries in the archive's ``requirements.txt``
(compiled wheels cannot be imported from a zip).
"""

from __future__ import annotations

import zipfile
from importlib import metadata
from pathlib import Path

from lambdarec.settings import find_project_root

JOBS = ("ingest_bronze", "build_silver", "build_gold")
CLUSTER_REQUIREMENTS = (
    "pyarrow>=18",
    "pandas>=2.2",
    "numpy>=1.26",
    "pydantic>=2.9,<3",
    "orjson>=3.10",
    "confluent-kafka",
)
_FIXED_TIME = (2024, 1, 1, 0, 0, 0)  # zip entry times, so the same sources give the same bytes


def _version() -> str:
    try:
        return metadata.version("lambdarec")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _add(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


def build_spark_archive(out_dir: Path | None = None, root: Path | None = None) -> tuple[Path, Path]:
    """Build the archive and its launcher.

    Args:
        out_dir: Where to write (default ``<checkout>/dist``).
        root: The checkout (default: found from this package).

    Returns:
        ``(archive, launcher)`` paths.

    Raises:
        FileNotFoundError: When no checkout with ``jobs/spark`` is found.
    """
    root = root or find_project_root()
    if root is None or not (root / "jobs" / "spark").is_dir():
        raise FileNotFoundError("build_spark_archive needs a lambdarec checkout (jobs/spark/)")
    out_dir = out_dir or root / "dist"
    out_dir.mkdir(parents=True, exist_ok=True)
    package = root / "src" / "lambdarec"
    archive_path = out_dir / f"lambdarec_spark_jobs-{_version()}.zip"
    tmp = archive_path.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w") as archive:
        for path in sorted(package.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            _add(archive, str(Path("lambdarec") / path.relative_to(package)), path.read_bytes())
        _add(archive, "lambdarec_spark_jobs/__init__.py", b'"""lambdarec Spark job entry points."""\n')
        for job in JOBS:
            _add(archive, f"lambdarec_spark_jobs/{job}.py", (root / "jobs" / "spark" / f"{job}.py").read_bytes())
        _add(archive, "requirements.txt", ("\n".join(CLUSTER_REQUIREMENTS) + "\n").encode())
    tmp.replace(archive_path)
    launcher = out_dir / "run_job.py"
    launcher.write_bytes((root / "jobs" / "spark" / "run_job.py").read_bytes())
    return archive_path, launcher
