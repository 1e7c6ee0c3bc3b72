"""A dataset whose rows all fall says why, and the earliest accepted time is a setting the adapters honour."""

from __future__ import annotations

from pathlib import Path

import pytest

from lambdarec.data.registry import open_dataset
from lambdarec.events.contract import epoch_ms_of_date
from lambdarec.settings import load_settings

MS_1995 = 788_918_400_000  # 1995-01-01


@pytest.fixture
def nineties(tmp_path: Path) -> Path:
    """A RetailRocket-format file of 300 views, all in 1995."""
    lines = ["timestamp,visitorid,event,itemid,transactionid"]
    lines += [f"{MS_1995 + i * 1000},{100 + i % 30},view,{5000 + i % 40}," for i in range(300)]
    path = tmp_path / "events.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_dataset_whose_rows_all_fall_names_the_adapters_reasons(nineties: Path) -> None:
    from lambdarec.models.data import DatasetTooSmallError, load_events

    with pytest.raises(DatasetTooSmallError) as raised:
        load_events(f"retailrocket:{nineties}")
    message = str(raised.value)
    assert "no valid events (need at least 200)" in message
    assert "300 of 300 rows dropped: 300 timestamp before 2000-01-01 (wrong unit?)" in message


def test_the_earliest_accepted_time_setting_lets_a_historical_dataset_in(
    nineties: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambdarec.models.data import load_events

    monkeypatch.setenv("LAMBDAREC_EARLIEST_EVENT_TIME", "1990-01-01")
    settings = load_settings("local")
    assert settings.earliest_event_ms == epoch_ms_of_date(settings.earliest_event_time) == 631_152_000_000
    assert settings.event_bounds().earliest_ms == 631_152_000_000
    events = load_events(f"retailrocket:{nineties}", earliest_ms=settings.earliest_event_ms)
    assert len(events) == 300 and int(events["event_time"].min()) == MS_1995
    # The adapter drops with the bound in its reason when the setting is later than the data.
    adapter = open_dataset(
        f"retailrocket:{nineties}", earliest_ms=epoch_ms_of_date(settings.earliest_event_time) + 10**12
    )
    assert adapter.read_table().num_rows == 0
    (reason,) = adapter.report.dropped
    assert reason.startswith("timestamp before 2021-09-09")


def test_too_few_events_after_drops_also_name_the_reasons(tmp_path: Path) -> None:
    from lambdarec.models.data import DatasetTooSmallError, load_events

    lines = ["timestamp,visitorid,event,itemid,transactionid"]
    lines += [f"{1_433_221_332_117 + i},{i},view,{i}," for i in range(50)]
    lines += [f"{1_433_221_332_117 + i},{i},wishlist,{i}," for i in range(20)]
    path = tmp_path / "events.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetTooSmallError, match=r"50 events; the models need at least 200; 20 of 70 rows dropped"):
        load_events(f"retailrocket:{path}")
