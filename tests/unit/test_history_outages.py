"""Grid outages: tracked from grid_up readings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.core.history import Outage, OutageTracker

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
