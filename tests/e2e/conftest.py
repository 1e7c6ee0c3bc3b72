"""One demo run for the whole end-to-end session: every e2e module reads its state and services.

Modules run in name order: ``test_demo_cli`` (the demo's summary, status, replay, dlq), then
``test_recommender`` (HTTP, gRPC, fallbacks, reload against the demo's recommender), then
``test_recommender_redis`` (a staging recommender over a Redis online store holding the demo's gold), and
``test_shutdown`` last (``services down`` stops every process).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e_cli import run_cli


@pytest.fixture(scope="session")
def demo_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Run the demo once (services stay up) and stop everything at the end of the session.

    ``LAMBDAREC_E2E_STATE=<state dir of a finished demo>`` reuses that demo instead (for working on
    these tests; it is neither rerun nor stopped).
    """
    reused = os.environ.get("LAMBDAREC_E2E_STATE")
    if reused:
        yield Path(reused)
        return
    state = tmp_path_factory.mktemp("demo-state")
    try:
        # Gold for every date and training through the feature store: ~15 min on 2 cores.
        run_cli(state, "demo", "--events", "20000", "--train-budget", "30", timeout=2400)
        yield state
    finally:
        run_cli(state, "services", "down", check=False)
