"""Finding the JDK and the jars resolved by ``make setup``."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from lambdarec.runtime.errors import PrerequisiteError

MIN_JAVA = 17


def java_executable() -> str:
    """Return the ``java`` to run engines with, checking it is JDK 17 or newer.

    Raises:
        PrerequisiteError: No java on PATH (or JAVA_HOME), or an older one.
    """
    import os

    home = os.environ.get("JAVA_HOME")
    candidate = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not candidate or not Path(candidate).exists():
        raise PrerequisiteError(
            "java was not found. Install JDK 17+ (Debian/Ubuntu: `apt-get install -y openjdk-17-jdk-headless`, "
            "macOS: `brew install openjdk@17`) or set JAVA_HOME."
        )
    out = subprocess.run([candidate, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    major = int(match.group(1)) if match else 0
    if major == 1 and match and match.group(2):  # "1.8" style
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise PrerequisiteError(
            f"{candidate} is Java {major or 'unknown'}; lambdarec needs JDK {MIN_JAVA}+ "
            "(`apt-get install -y openjdk-17-jdk-headless` or set JAVA_HOME)."
        )
    return candidate


def classpath(jars_dir: Path, profile: str) -> str:
    """Classpath of one resolved jar profile (see jvm/pom.xml).

    Raises:
        PrerequisiteError: The profile was not resolved yet.
    """
    folder = jars_dir / profile
    jars = sorted(folder.glob("*.jar")) if folder.is_dir() else []
    if not jars:
        raise PrerequisiteError(f"no {profile} jars in {folder}; run `make setup` (it resolves them with Maven)")
    return ":".join(str(jar) for jar in jars)
