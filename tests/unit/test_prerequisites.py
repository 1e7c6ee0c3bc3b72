"""A missing JDK or Maven stops setup at once, with the command that fixes it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lambdarec.runtime.errors import PrerequisiteError
from lambdarec.runtime.jvm import classpath, java_executable

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_prereqs.sh"


def run_with_path(tmp_path: Path, tools: list[str]) -> subprocess.CompletedProcess[str]:
    """Run the check with a PATH holding only the named tools (plus a shell's basics)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in [*tools, "sed", "head", "bash"]:
        # pyenv's python3 is a shim that needs pyenv itself: link the real interpreter.
        found = os.path.realpath(sys._base_executable) if tool == "python3" else shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    return subprocess.run(["/bin/bash", str(SCRIPT)], capture_output=True, text=True, env=env, check=False)


def test_all_present_passes(tmp_path: Path) -> None:
    if not (shutil.which("java") and shutil.which("mvn") and shutil.which("chromium")):
        pytest.skip("this machine lacks java, mvn or chromium")
    result = run_with_path(tmp_path, ["python3", "java", "mvn", "chromium"])
    assert result.returncode == 0, result.stderr


def test_missing_chromium_names_the_fix(tmp_path: Path) -> None:
    result = run_with_path(tmp_path, ["python3", "java", "mvn"])
    assert result.returncode == 2
    assert "chromium not found" in result.stderr and "apt-get install -y chromium" in result.stderr


def test_missing_java_and_maven_name_the_fix(tmp_path: Path) -> None:
    result = run_with_path(tmp_path, ["python3"])
    assert result.returncode == 2
    assert "java not found" in result.stderr and "openjdk-17-jdk-headless" in result.stderr
    assert "mvn (Maven 3.8+) not found" in result.stderr and "apt-get install -y maven" in result.stderr


def test_java_executable_rejects_a_missing_java_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    with pytest.raises(PrerequisiteError, match="JDK 17"):
        java_executable()


def test_unresolved_jars_say_run_make_setup(tmp_path: Path) -> None:
    with pytest.raises(PrerequisiteError, match="make setup"):
        classpath(tmp_path, "kafka")


def test_old_java_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "jdk" / "bin"
    fake.mkdir(parents=True)
    java = fake / "java"
    java.write_text("#!/bin/sh\necho 'openjdk version \"11.0.2\" 2019-01-15' >&2\n")
    java.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    monkeypatch.setenv("PATH", os.environ["PATH"])
    with pytest.raises(PrerequisiteError, match="Java 11"):
        java_executable()


def test_missing_redis_server_names_the_fix(tmp_path: Path) -> None:
    from lambdarec.runtime.redis_server import RedisService
    from lambdarec.runtime.supervisor import Supervisor
    from lambdarec.settings import load_settings

    settings = load_settings("local", state_dir=tmp_path, redis={"server": "no-such-redis-server"})
    with pytest.raises(PrerequisiteError, match=r"apt-get install -y redis-server.*make setup"):
        Supervisor(settings, [RedisService(settings)]).up(["redis"])
    assert not (tmp_path / "services" / "redis" / "service.json").exists()  # nothing was launched
