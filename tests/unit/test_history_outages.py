"""Grid outages: tracked from grid_up readings, and the ones a history window reports."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gateway.core.history import HistoryQueryError, Outage, OutageTracker, Window, outages_in

T0 = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def test_outage_tracker_opens_and_closes_events() -> None:
    tracker = OutageTracker()
    assert tracker.update(T0, grid_up=True) is None
    opened = tracker.update(T0 + timedelta(seconds=10), grid_up=False)
    assert opened == Outage(start=T0 + timedelta(seconds=10))
    assert tracker.update(T0 + timedelta(seconds=20), grid_up=False) is None
    assert tracker.update(T0 + timedelta(seconds=30), grid_up=None) is None
    closed = tracker.update(T0 + timedelta(seconds=3610), grid_up=True)
    assert closed is not None
    assert closed.end is not None
    assert closed.duration_s(T0) == 3600
    assert tracker.current is None
    assert tracker.update(T0 + timedelta(hours=2), grid_up=True) is None


def test_outage_tracker_resumes_an_open_outage() -> None:
    tracker = OutageTracker(Outage(start=T0))
    assert tracker.current == Outage(start=T0)
    closed = tracker.update(T0 + timedelta(minutes=2), grid_up=True)
    assert closed == Outage(start=T0, end=T0 + timedelta(minutes=2))


def test_a_window_reports_the_outages_starting_in_it_oldest_first() -> None:
    day = Window(start=T0, end=T0 + timedelta(days=1), tz=ZoneInfo("UTC"), now=T0 + timedelta(days=2))
    before = Outage(T0 - timedelta(minutes=1), T0 + timedelta(hours=1))  # started before: not here
    late = Outage(T0 + timedelta(hours=5))
    early = Outage(T0, T0 + timedelta(minutes=1))  # the start is included
    at_end = Outage(T0 + timedelta(days=1))  # the end is not
    assert outages_in([before, late, at_end, early], day) == [early, late]
    assert outages_in([before, late, at_end, early], replace(day, start=None)) == [before, early, late]
    with pytest.raises(HistoryQueryError) as info:
        outages_in([late, early], day, max_events=1)
    assert info.value.field == "start_date"
