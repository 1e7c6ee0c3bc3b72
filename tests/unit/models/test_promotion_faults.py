"""Promotion when MLflow fails: fail fast before moving anything, and never leave one alias moved.

The integration fault test (tests/integration/models/test_tracking_faults.py) kills the real
server; these pin the rules themselves with stand-in clients.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST

import lambdarec.tracking.mlflow_log as mlflow_log
from lambdarec import names
from lambdarec.index.milvus import restore_alias
from lambdarec.runtime.service import pick_free_port


def test_require_tracking_fails_in_seconds_on_a_server_that_does_not_answer() -> None:
    uri = f"http://127.0.0.1:{pick_free_port()}"
    started = time.monotonic()
    with pytest.raises(mlflow_log.TrackingUnavailableError, match="does not answer.*nothing was changed"):
        mlflow_log.require_tracking(uri, timeout_s=2)
    assert time.monotonic() - started < 10  # MLflow's own client retries for about four minutes


def test_require_tracking_passes_a_healthy_server_and_ignores_local_stores() -> None:
    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *_args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        mlflow_log.require_tracking(f"http://127.0.0.1:{server.server_address[1]}")
    finally:
        server.shutdown()
    mlflow_log.require_tracking("sqlite:///nowhere.db")  # nothing to reach


class FakeClient:
    """An MLflow client whose alias calls succeed or raise as told."""

    def __init__(self, aliases: dict[str, str], fail_on: str | None = None, lookup_error: int | None = None) -> None:
        self.aliases = aliases
        self.fail_on = fail_on
        self.lookup_error = lookup_error

    def get_model_version_by_alias(self, model: str, alias: str) -> Any:
        if self.lookup_error is not None:
            raise MlflowException("lookup failed", error_code=self.lookup_error)
        if model not in self.aliases:
            raise MlflowException("no alias", error_code=INVALID_PARAMETER_VALUE)
        return type("Version", (), {"version": self.aliases[model]})()

    def get_model_version(self, model: str, version: str) -> Any:
        return type("Version", (), {"run_id": "run-2"})()

    def search_model_versions(self, _filter: str) -> list[Any]:
        return [type("Version", (), {"run_id": "run-2", "version": "7"})()]

    def set_registered_model_alias(self, model: str, alias: str, version: str) -> None:
        if model == self.fail_on:
            raise MlflowException("connection refused")
        self.aliases[model] = version

    def delete_registered_model_alias(self, model: str, alias: str) -> None:
        self.aliases.pop(model, None)


@pytest.mark.parametrize(
    ("code", "expected"), [(INVALID_PARAMETER_VALUE, None), (RESOURCE_DOES_NOT_EXIST, None), (INTERNAL_ERROR, "raise")]
)
def test_alias_version_is_none_only_when_there_is_no_alias(
    monkeypatch: pytest.MonkeyPatch, code: int, expected: str | None
) -> None:
    client = FakeClient({}, lookup_error=code)
    monkeypatch.setattr("mlflow.tracking.MlflowClient", lambda tracking_uri: client)
    if expected == "raise":
        with pytest.raises(MlflowException):  # an unreachable or failing server is not "no alias"
            mlflow_log.alias_version("http://x", names.TWO_TOWER_MODEL, names.CHAMPION_ALIAS)
    else:
        assert mlflow_log.alias_version("http://x", names.TWO_TOWER_MODEL, names.CHAMPION_ALIAS) is expected


@pytest.mark.parametrize("before", [{names.TWO_TOWER_MODEL: "1", names.DEEPFM_MODEL: "1"}, {}])
def test_promote_puts_back_the_first_champion_when_the_second_cannot_move(
    monkeypatch: pytest.MonkeyPatch, before: dict[str, str]
) -> None:
    client = FakeClient(dict(before), fail_on=names.DEEPFM_MODEL)
    monkeypatch.setattr("mlflow.tracking.MlflowClient", lambda tracking_uri: client)
    with pytest.raises(MlflowException, match="connection refused"):
        mlflow_log.promote("http://x", "2")
    assert client.aliases == before  # moved back (or removed, when there was none)


class FakeMilvus:
    """Alias calls of a MilvusClient over a dict of collection -> aliases."""

    def __init__(self, aliases: dict[str, list[str]]) -> None:
        self.aliases = aliases

    def list_collections(self) -> list[str]:
        return list(self.aliases)

    def list_aliases(self, name: str) -> dict[str, list[str]]:
        return {"aliases": self.aliases[name]}

    def alter_alias(self, name: str, alias: str) -> None:
        for held in self.aliases.values():
            if alias in held:
                held.remove(alias)
        self.aliases[name].append(alias)

    def drop_alias(self, alias: str) -> None:
        for held in self.aliases.values():
            if alias in held:
                held.remove(alias)


def test_restore_alias_puts_the_index_alias_back_or_removes_a_new_one() -> None:
    alias = names.ITEM_EMBEDDINGS_ALIAS
    client = FakeMilvus({"item_embeddings_v1": [], "item_embeddings_v2": [alias]})
    restore_alias(client, "item_embeddings_v1")
    assert client.aliases == {"item_embeddings_v1": [alias], "item_embeddings_v2": []}
    restore_alias(client, None)  # there was no alias before the swap
    assert client.aliases == {"item_embeddings_v1": [], "item_embeddings_v2": []}
