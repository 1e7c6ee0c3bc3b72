"""A batch run ends the Spark JVM it started, so what the process does next does not carry its heap."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.integration

# In a fresh interpreter: the test session's own Spark JVM (other modules' fixtures) must not count.
SCRIPT = textwrap.dedent(
    """
    import psutil
    from lambdarec.batch.spark import build_spark, jvm_running, stop_spark

    me = psutil.Process()
    spark = build_spark()
    assert spark.range(10).count() == 10
    jvms = [p for p in me.children(recursive=True) if p.name() == "java"]
    assert len(jvms) == 1, jvms
    stop_spark(spark, jvm=True)
    gone, alive = psutil.wait_procs(jvms, timeout=30)
    assert not alive and not jvm_running(), alive
    again = build_spark()  # a later session starts a new JVM
    assert again.range(5).count() == 5
    stop_spark(again, jvm=True)
    print("jvm stopped and restarted")
    """
)


def test_stop_spark_ends_the_jvm_and_a_later_session_starts_a_new_one() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "jvm stopped and restarted" in result.stdout
