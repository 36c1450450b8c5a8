"""StormWatch against the real SQLite store: sources, failures, persistence, episodes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest_asyncio
from structlog.testing import capture_logs

from gateway.core.storm import StormAlert, StormEpisode
from gateway.runtime.storage import Storage
from gateway.runtime.storage.storm import StormStore
from gateway.runtime.storm import StormWatch

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
TORNADO = StormAlert(event="Tornado Warning", source="nws", onset=NOW, ends=NOW + H, id="urn:1")


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def episode_of(watch: StormWatch) -> StormEpisode | None:
    return watch.episode  # read anew (mypy keeps an attribute narrowed across awaits)


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[StormStore]:
    async with Storage(tmp_path / "gateway.sqlite3") as storage:
        yield StormStore(storage)


async def test_a_failing_source_keeps_its_alert_until_it_ends(store: StormStore) -> None:
    clock = Clock()
    watch = StormWatch(1, store, clock=clock, configured=("nws",))
    await watch.update("nws", (TORNADO,))
    assert watch.alerts(clock()) == (TORNADO,)
    with capture_logs() as logs:
        for _ in range(5):
            watch.failed("nws", "HTTP 500")
        watch.failed("nws", "timed out")
    assert [e["error"] for e in logs] == ["HTTP 500", "timed out"]  # once per change
    assert (watch.sources["nws"].status, watch.sources["nws"].failures) == ("failing", 6)
    assert watch.active(clock())
    clock.now = NOW + H  # its ends: over, whatever the source
    assert not watch.active(clock())
    with capture_logs() as logs:
        await watch.update("nws", ())
    assert [e["event"] for e in logs] == ["storm.source_recovered"]


async def test_a_restart_keeps_the_alerts_and_the_open_episode(store: StormStore) -> None:
    clock = Clock()
    watch = StormWatch(1, store, clock=clock)
    await watch.update("nws", (TORNADO,))
    await watch.update("admin", (StormAlert(event="Storm alert (admin)", source="admin"),))
    watch.device_reading("inverter", True)  # live only: not kept
    await watch.check(enabled=True)
    episode = watch.episode
    assert episode is not None
    assert (episode.event, episode.source, episode.alert_ends) == ("Storm alert (admin)", "admin", None)

    again = StormWatch(1, store, clock=clock)
    with capture_logs() as logs:
        await again.load()
    assert {a.source for a in again.alerts(clock())} == {"nws", "admin"}
    assert again.episode == episode
    assert logs[0]["event"] == "storm.restored"
    other = StormWatch(2, store, clock=clock)
    await other.load()
    assert other.alerts(clock()) == ()  # another site's alerts stay its own

    clock.now = NOW + 2 * H
    await again.update("admin", ())
    await again.check(enabled=True)
    assert episode_of(again) is None
    (stored,) = await again.episodes(None, clock.now + H)
    assert (stored.start, stored.end) == (NOW, NOW + 2 * H)

    clock.now = NOW + 3 * H
    await again.update("admin", (StormAlert(event="Wind Advisory", source="admin"),))
    await again.check(enabled=True)
    newest, oldest = await again.recent_episodes(5)
    assert (newest.event, newest.end, oldest) == ("Wind Advisory", None, stored)
    assert await again.recent_episodes(1) == [newest]


async def test_episodes_follow_the_storm_mode_setting(store: StormStore) -> None:
    clock = Clock()
    watch = StormWatch(1, store, clock=clock)
    woken: list[int] = []
    watch.on_change = lambda: woken.append(1)
    await watch.update("nws", (TORNADO,))
    await watch.check(enabled=False)  # storm mode off: an alert, no episode
    assert (watch.episode, len(woken)) == (None, 1)
    clock.now = NOW + timedelta(minutes=5)
    await watch.check(enabled=True)
    assert watch.episode is not None
    assert watch.episode.start == clock.now
    assert len(woken) == 1  # the active set did not change
    clock.now = NOW + H
    with capture_logs() as logs:
        await watch.check(enabled=True)
    assert [e["event"] for e in logs] == ["storm.alert_ended", "storm.mode_ended"]
    assert logs[0]["why"] == "expired"
    assert len(woken) == 2


async def test_device_readings_are_a_source(store: StormStore) -> None:
    watch = StormWatch(1, store, clock=Clock())
    watch.device_reading("gx", None)  # a device without a storm reading: no source
    assert "device:gx" not in watch.sources
    watch.device_reading("gx", True)
    (alert,) = watch.alerts(NOW)
    assert alert.source == "device:gx"
    watch.device_reading("gx", False)
    assert watch.alerts(NOW) == ()
