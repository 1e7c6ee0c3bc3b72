"""Last of the e2e session (modules run in name order): `services down` stops every process of the demo."""

from __future__ import annotations

import json
from pathlib import Path

import psutil
import pytest

from e2e_cli import run_cli

pytestmark = pytest.mark.timeout(2700)  # when run alone, this test's fixture runs the whole demo


def test_down_stops_every_process(demo_state: Path) -> None:
    statuses = json.loads(run_cli(demo_state, "services", "status", "--json").stdout)
    pids = [s["pid"] for s in statuses]
    run_cli(demo_state, "services", "down")
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids)
    stopped = run_cli(demo_state, "services", "status", check=False)
    assert stopped.returncode == 1 and "stopped" in stopped.stdout
