"""Running the real `lambdarec` CLI from the end-to-end tests (a subprocess, wide output, no colours)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LAMBDAREC = [sys.executable, "-m", "lambdarec.cli"]


def run_cli(
    state: Path, *args: str, check: bool = True, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``lambdarec --state-dir STATE ARGS...`` (``env``: extra variables); raises with both output streams when
    ``check`` and it fails."""
    variables = {**os.environ, "COLUMNS": "200", "TERM": "dumb", **(env or {})}
    result = subprocess.run(
        [*LAMBDAREC, "--state-dir", str(state), *args],
        capture_output=True,
        text=True,
        env=variables,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"lambdarec {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result
