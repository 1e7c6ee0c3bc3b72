"""The CI skip guard of tests/conftest.py, run for real: pytest in a subprocess over generated test files.

The generated folder gets a verbatim copy of tests/conftest.py, so what is tested is the guard and
the allow-list CI uses.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"
LISTED = "the embedded Milvus runs on Linux only; set LAMBDAREC_MILVUS__URI"  # in ALLOWED_SKIPS

CASES = {
    "unlisted": """
import pytest

def test_needs_redis():
    pytest.skip("redis-server is not installed (scripts/setup.sh installs it)")

def test_runs():
    assert True
""",
    "listed": f"""
import pytest

def test_needs_milvus():
    pytest.skip({LISTED!r})

@pytest.mark.xfail(reason="known", strict=True)
def test_known_failure():
    assert False
""",
    "module": """
import pytest

pytest.importorskip("no_such_module_lambdarec")

def test_never_collected():
    assert True
""",
    "fixture": """
import pytest

@pytest.fixture
def dataset():
    pytest.skip("dataset samples not found at ../shared/datasets")

def test_reads(dataset):
    assert dataset
""",
}


def run(tmp_path: Path, case: str, ci: str | None) -> subprocess.CompletedProcess[str]:
    folder = tmp_path / case
    folder.mkdir()
    shutil.copy(CONFTEST, folder / "conftest.py")
    (folder / f"test_{case}.py").write_text(CASES[case])
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "--rootdir", str(folder), str(folder)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("case", ["unlisted", "fixture"])
def test_an_unlisted_skip_fails_a_ci_run(tmp_path: Path, case: str) -> None:
    result = run(tmp_path, case, ci="true")
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout
    assert "skipped under CI=true" in result.stdout and "ALLOWED_SKIPS" in result.stdout
    # A skip in the test body fails the test; one in a fixture fails its setup (an error).
    assert ("1 failed" if case == "unlisted" else "1 error") in result.stdout


def test_a_module_skipped_at_import_fails_a_ci_run(tmp_path: Path) -> None:
    result = run(tmp_path, "module", ci="true")
    assert result.returncode != pytest.ExitCode.OK, result.stdout
    assert "skipped under CI=true: could not import 'no_such_module_lambdarec'" in result.stdout


def test_a_listed_skip_and_an_xfail_pass_a_ci_run(tmp_path: Path) -> None:
    result = run(tmp_path, "listed", ci="true")
    assert result.returncode == pytest.ExitCode.OK, result.stdout
    assert "1 skipped, 1 xfailed" in result.stdout


@pytest.mark.parametrize("ci", [None, "false"])
def test_outside_ci_a_skip_is_a_skip(tmp_path: Path, ci: str | None) -> None:
    result = run(tmp_path, "unlisted", ci=ci)
    assert result.returncode == pytest.ExitCode.OK, result.stdout
    assert "1 passed, 1 skipped" in result.stdout
