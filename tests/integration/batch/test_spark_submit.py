"""The packaged archive runs under a real `spark-submit` (local[2]), outside the source tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from batch_lake_helpers import DAYS, silver_hash

from lambdarec.batch.lake import Lake
from lambdarec.batch.package import build_spark_archive
from lambdarec.batch.silver import build_silver
from lambdarec.batch.testing import bronze_table, write_bronze


def _spark_submit() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "bin" / "spark-submit"


def without_source_tree(folder: Path) -> Path:
    """A ``sitecustomize`` that drops the checkout's ``src`` (the editable install) from ``sys.path``.

    On ``PYTHONPATH``, it makes every Python that spark-submit starts (driver and workers) unable to
    import ``lambdarec`` except from the archive.
    """
    import lambdarec

    src = str(Path(lambdarec.__file__).resolve().parents[1])
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(
        f"import sys\nsys.path[:] = [p for p in sys.path if p.rstrip('/') != {src!r}]\n"
    )
    return folder


def test_packaged_jobs_run_under_spark_submit(spark: object, tmp_path: Path, shop_events: pa.Table) -> None:
    archive, launcher = build_spark_archive(tmp_path / "dist")
    lake = Lake(tmp_path / "lake")
    day = DAYS[1]
    write_bronze(lake, bronze_table(shop_events), run="submit")
    workdir = tmp_path / "elsewhere"  # not the checkout: imports must come from the archive
    workdir.mkdir()
    env = {
        **os.environ,
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "PYTHONPATH": str(without_source_tree(tmp_path / "site")),
    }
    # The same interpreter and environment cannot import lambdarec on its own: whatever the jobs
    # import below comes from the archive.
    bare = subprocess.run([sys.executable, "-c", "import lambdarec"], cwd=workdir, env=env, capture_output=True)
    assert bare.returncode != 0 and b"No module named 'lambdarec'" in bare.stderr
    base = [str(_spark_submit()), "--master", "local[2]", "--conf", "spark.sql.shuffle.partitions=2"]
    base += ["--conf", "spark.ui.enabled=false", "--py-files", str(archive), str(launcher)]
    silver = subprocess.run(
        [*base, "build_silver", "--lake", str(lake.root), "--date", day],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert silver.returncode == 0, silver.stderr[-3000:]
    report = json.loads(silver.stdout.strip().splitlines()[-1])
    assert report["date"] == day and report["events"] > 0
    # The packaged job computes what the library computes in process, on the same bronze.
    reference = Lake(tmp_path / "reference")
    write_bronze(reference, bronze_table(shop_events), run="submit")
    (expected,) = build_silver(spark, reference, [day])  # type: ignore[arg-type]
    assert report["events"] == expected.to_dict()["events"]
    assert silver_hash(lake) == silver_hash(reference)
    gold = subprocess.run(
        [*base, "build_gold", "--lake", str(lake.root), "--date", day],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert gold.returncode == 0, gold.stderr[-3000:]
    assert json.loads(gold.stdout.strip().splitlines()[-1])["rows"]["user_history"] > 0
    assert pq.read_table(lake.gold("item_stats") / f"date={day}").num_rows > 0
