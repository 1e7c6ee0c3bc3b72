"""``lambdarec services up airflow``: the real ``airflow standalone`` under the supervisor.

It becomes healthy, lists our three DAGs (paused, no import errors) through its REST API with the
generated admin password, listens on loopback for the UI/API, and ``down`` leaves none of its
~40 processes behind.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest

from lambdarec.settings import load_settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

EXPECTED = {"daily_features", "weekly_retrain", "drift_monitor"}


def call(url: str, token: str | None = None, body: dict[str, Any] | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if body is not None else "GET")
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def test_airflow_starts_lists_our_dags_and_stops_leaving_nothing(tmp_path: Path) -> None:
    from lambdarec.runtime.airflow_server import ADMIN_USER, AirflowService
    from lambdarec.runtime.supervisor import Supervisor, _group_members

    settings = load_settings("local", state_dir=tmp_path / "state")
    service = AirflowService(settings)
    supervisor = Supervisor(settings, [service])
    started = time.monotonic()
    supervisor.up([service.name])
    try:
        healthy_s = time.monotonic() - started
        status = supervisor.status_of(service)
        assert status.healthy and status.endpoint is not None
        family = [psutil.Process(status.pid), *psutil.Process(status.pid).children(recursive=True)]
        pss_mb = sum(p.memory_full_info().pss for p in family if p.is_running()) / 2**20
        print(f"airflow healthy after {healthy_s:.1f} s, {len(family)} processes, PSS {pss_mb:.0f} MB")  # noqa: T201
        assert service.airflow_home == settings.state_dir.resolve() / "services" / "airflow" / "data"
        assert any("Airflow UI" in line and str(service.password_file) in line for line in service.notes(status.ports))

        password = service.admin_password()
        assert password, f"no generated password in {service.password_file}"
        token = call(f"{status.endpoint}/auth/token", body={"username": ADMIN_USER, "password": password})[
            "access_token"
        ]
        # The DAG processor parses the folder on its own schedule: wait for it (bounded).
        deadline = time.monotonic() + 180
        dags: dict[str, Any] = {}
        while time.monotonic() < deadline:
            dags = {d["dag_id"]: d for d in call(f"{status.endpoint}/api/v2/dags", token)["dags"]}
            if EXPECTED <= set(dags):
                break
            time.sleep(2)
        assert set(dags) == EXPECTED, sorted(dags)
        assert all(d["is_paused"] for d in dags.values())  # nothing runs on the engines until a user unpauses
        assert call(f"{status.endpoint}/api/v2/importErrors", token)["total_entries"] == 0

        # The UI/API port is on loopback only (the log servers are the documented exception).
        api_port = status.ports["port"]
        listening = set()
        for proc in family:
            try:
                listening |= {
                    (c.laddr.ip, c.laddr.port) for c in proc.net_connections("tcp") if c.status == psutil.CONN_LISTEN
                }
            except psutil.Error:
                continue
        assert {ip for ip, port in listening if port == api_port} == {"127.0.0.1"}, listening
    finally:
        pid = supervisor.status_of(service).pid
        supervisor.down([service.name])
    assert pid is not None
    assert _group_members(pid) == []
    assert not [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert supervisor.status_of(service).state == "stopped"
