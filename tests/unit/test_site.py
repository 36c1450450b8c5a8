"""Site's command pipeline (persist -> write -> read back -> answer), its failures, and drift
correction, against in-memory devices and the real SQLite store."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
import zoneinfo
from collections.abc import AsyncIterator, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from drivers.base import Setpoints
from drivers.errors import DeviceRejected, DeviceUnreachable
from drivers.errors import NotConfirmed as DriverNotConfirmed
from gateway.core.errors import DeviceFailed, NotConfirmed, SiteOffline, Unavailable
from gateway.core.settings import SiteSettings
from gateway.core.storm import StormAlert
from gateway.runtime.clock import InProcessClock
from gateway.runtime.devices import DeviceState
from gateway.runtime.poller import DevicePoller
from gateway.runtime.site import KEPT, ROLLED_BACK, Site
from gateway.runtime.storage import Storage
from gateway.runtime.storage.sites import SiteStore
from tests.fakes import FACTORY, MemoryDriver, Writes, device_config, site_config
from tests.helpers import eventually

SITE_ID = 7
NOW = datetime(2026, 6, 21, 12, 0, tzinfo=UTC)
TZ = zoneinfo.ZoneInfo("Europe/Berlin")  # loaded at import: ZoneInfo reads files on first use
#: What the default settings (self-consumption, 20 % reserve, pv_only) ask of a battery.
DEFAULT_WANTED = Setpoints(reserve_pct=20, grid_charging=False, export_limit_w=None)
#: The same after ``backup`` with 50 %.
WANTED_50 = Setpoints(reserve_pct=50, grid_charging=False, export_limit_w=None)
BACKUP_50 = {"backup_reserve_pct": 50}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SiteStore]:
    async with Storage(tmp_path / "gateway.sqlite3") as storage:
        yield SiteStore(storage)


def make_site(store: SiteStore, *drivers: MemoryDriver, command_timeout_s: float = 5.0,
              ) -> tuple[Site, list[DeviceState]]:
    states = [DeviceState(device_config(d.name), d) for d in drivers]
    config = site_config(SITE_ID, [s.config for s in states])
    site = Site(config, states, store, command_timeout_s=command_timeout_s, clock=lambda: NOW,
                tz=TZ)
    return site, states


async def poll(state: DeviceState) -> None:
    """What one good poll leaves in a device's state (the site's tests run no poller)."""
    driver = state.driver
    state.info = await driver.connect()
    state.telemetry = await driver.read()
    state.held = state.telemetry.held or await driver.read_back()
    state.received_at = time.monotonic()
    state.connected = True


async def stored_reserve(store: SiteStore) -> int:
    stored = await store.load_settings(SITE_ID)
    assert stored is not None
    return SiteSettings.from_json(stored).backup_reserve_pct


async def last_entry(store: SiteStore) -> dict[str, Any]:
    return (await store.commands(SITE_ID, limit=1))[0]


@contextlib.asynccontextmanager
async def running(coro: Coroutine[Any, Any, None]) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(coro)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# ---- the pipeline's order ----------------------------------------------------------------------


async def test_a_command_is_persisted_then_written_then_confirmed_then_answered(store: SiteStore) -> None:
    calls: list[str] = []
    first, second = MemoryDriver("a", calls=calls, confirm_timeout_s=30), MemoryDriver("b", calls=calls)
    site, states = make_site(store, first, second)
    for state in states:
        await poll(state)
    calls.clear()
    at_write: list[tuple[int, str]] = []

    async def probe(_: Setpoints) -> None:  # what SQLite holds when the device is written
        at_write.append((await stored_reserve(store), (await last_entry(store))["status"]))

    first.before_write = probe
    first.gate = asyncio.Event()  # the device takes the write only when the test says so

    async with running(site.command("backup", BACKUP_50)) as command:
        await eventually(lambda: calls.count("a.read_back") >= 3)  # read back, not there yet
        assert not command.done()
        assert "b.apply" not in calls  # one device at a time
        assert (await last_entry(store))["status"] == "pending"
        first.gate.set()
        await asyncio.wait({command}, timeout=10)
        assert command.done()
        command.result()

    assert at_write == [(50, "pending")]  # persisted before the write, journaled, not answered
    assert calls[0] == "a.apply"
    assert set(calls[1:calls.index("b.apply")]) == {"a.read_back"}
    assert calls[calls.index("b.apply"):] == ["b.apply", "b.read_back"]
    assert first.holding == second.holding == WANTED_50
    entry = await last_entry(store)
    assert (entry["command"], entry["status"], entry["changes"]) == ("backup", "confirmed", BACKUP_50)
    assert site.applied == WANTED_50
    assert all(state.refresh.is_set() for state in states)  # a poll now shows the change


async def test_settings_survive_in_the_store_for_the_next_start(store: SiteStore) -> None:
    driver = MemoryDriver("a")
    site, states = make_site(store, driver)
    await poll(states[0])
    await site.command("backup", BACKUP_50)
    restarted, _ = make_site(store, MemoryDriver("a"))
    await restarted.load()
    assert restarted.settings.backup_reserve_pct == 50


# ---- failures: kept --------------------------------------------------------------------------


async def test_an_offline_site_keeps_the_command_and_applies_it_when_back(store: SiteStore) -> None:
    driver = MemoryDriver("a")
    site, states = make_site(store, driver)  # never polled: no data yet
    with pytest.raises(SiteOffline) as raised:
        await site.command("backup", BACKUP_50)
    assert "device offline: a (never read; no data yet)" in raised.value.description
    assert raised.value.description.endswith(KEPT)
    assert driver.written == []
    assert site.settings.backup_reserve_pct == 50
    assert await stored_reserve(store) == 50
    entry = await last_entry(store)
    assert entry["status"] == "kept"
    assert entry["detail"] == raised.value.description
    assert site.changed.is_set()  # the control loop owes a pass

    await poll(states[0])  # the device is back
    assert await site.reconcile("command")
    assert driver.holding == WANTED_50


async def test_a_device_that_drops_during_the_write_keeps_the_command(store: SiteStore) -> None:
    driver = MemoryDriver("a")
    site, states = make_site(store, driver)
    await poll(states[0])
    await site.reconcile("start")
    site.changed.clear()
    driver.reachable = False
    with pytest.raises(DeviceFailed) as raised:
        await site.command("backup", BACKUP_50)
    assert isinstance(raised.value.cause, DeviceUnreachable)
    assert raised.value.description.endswith(KEPT)
    assert (await last_entry(store))["status"] == "kept"
    assert await stored_reserve(store) == 50
    assert site.applied is None  # the device may hold part of it
    assert site.changed.is_set()


async def test_a_device_that_never_answers_the_write_is_not_confirmed_in_time(store: SiteStore) -> None:
    driver = MemoryDriver("a")
    site, states = make_site(store, driver, command_timeout_s=0.2)
    await poll(states[0])
    driver.writes = Writes.HANG
    with pytest.raises(NotConfirmed) as raised:
        await site.command("backup", BACKUP_50)
    assert raised.value.description == (
        f"site {SITE_ID}: devices did not confirm within 0.2 s; {KEPT}")
    entry = await last_entry(store)
    assert (entry["status"], entry["detail"]) == ("kept", raised.value.description)
    assert (site.settings.backup_reserve_pct, await stored_reserve(store)) == (50, 50)
    assert site.applied is None


async def test_a_write_the_read_back_never_shows_is_not_confirmed(store: SiteStore) -> None:
    driver = MemoryDriver("a", confirm_timeout_s=0.1)
    site, states = make_site(store, driver)
    await poll(states[0])
    driver.writes = Writes.IGNORE
    with pytest.raises(DeviceFailed) as raised:
        await site.command("backup", BACKUP_50)
    assert isinstance(raised.value.cause, DriverNotConfirmed)
    assert raised.value.description.endswith(KEPT)
    assert (await last_entry(store))["status"] == "kept"
    assert (site.settings.backup_reserve_pct, await stored_reserve(store)) == (50, 50)
    assert driver.holding == FACTORY


# ---- failures: rejected ----------------------------------------------------------------------


async def test_a_rejected_command_changes_nothing(store: SiteStore) -> None:
    driver = MemoryDriver("a")
    site, states = make_site(store, driver)
    await poll(states[0])
    await site.command("backup", {"backup_reserve_pct": 30})
    driver.writes = Writes.REJECT
    with capture_logs() as logs, pytest.raises(DeviceFailed) as raised:
        await site.command("backup", BACKUP_50)
    assert isinstance(raised.value.cause, DeviceRejected)
    assert raised.value.description == f"device a: a: illegal data value; {ROLLED_BACK}"
    assert site.settings.backup_reserve_pct == 30
    assert await stored_reserve(store) == 30
    entry = await last_entry(store)
    assert (entry["status"], entry["detail"]) == ("rejected", raised.value.description)
    assert driver.holding.reserve_pct == 30
    assert [e["outcome"] for e in logs if e["event"] == "command.failed"] == ["rejected"]


async def test_a_rejection_by_the_second_device_puts_the_first_back(store: SiteStore) -> None:
    calls: list[str] = []
    first, second = MemoryDriver("a", calls=calls), MemoryDriver("b", calls=calls)
    site, states = make_site(store, first, second)
    for state in states:
        await poll(state)
    await site.reconcile("start")
    calls.clear()
    site.changed.clear()
    second.writes = Writes.REJECT
    with pytest.raises(DeviceFailed) as raised:
        await site.command("backup", BACKUP_50)
    assert raised.value.device == "b"
    assert first.written[-2:] == [WANTED_50, DEFAULT_WANTED]  # confirmed, then put back
    assert first.holding == DEFAULT_WANTED
    assert second.written[-1] == WANTED_50
    assert second.holding == DEFAULT_WANTED
    assert [c for c in calls if c.endswith("apply")] == ["a.apply", "b.apply", "a.apply"]
    assert (site.settings.backup_reserve_pct, await stored_reserve(store)) == (20, 20)
    assert (await last_entry(store))["status"] == "rejected"
    # The device that refused may hold part of the write: the next pass checks it.
    assert site.applied is None
    assert site.changed.is_set()


async def test_a_failed_put_back_is_logged_and_the_settings_still_roll_back(store: SiteStore) -> None:
    first, second = MemoryDriver("a"), MemoryDriver("b")
    site, states = make_site(store, first, second)
    for state in states:
        await poll(state)
    first.script = [Writes.ACCEPT, Writes.REJECT]  # takes the command, refuses the put-back
    second.writes = Writes.REJECT
    with capture_logs() as logs, pytest.raises(DeviceFailed):
        await site.command("backup", BACKUP_50)
    failed = [e for e in logs if e["event"] == "command.rollback_failed"]
    assert [e["devices"] for e in failed] == [["a"]]
    assert first.holding == WANTED_50  # stays until the owed reconciliation pass
    assert (site.settings.backup_reserve_pct, await stored_reserve(store)) == (20, 20)
    assert (await last_entry(store))["status"] == "rejected"


# ---- reconciliation ----------------------------------------------------------------------------


async def test_the_first_apply_after_start_is_not_drift(store: SiteStore) -> None:
    driver = MemoryDriver("a")
    site, states = make_site(store, driver)
    await poll(states[0])
    with capture_logs() as logs:
        assert await site.reconcile("start")
    assert driver.holding == DEFAULT_WANTED
    assert site.drift_count == 0
    events = [e["event"] for e in logs]
    assert "setpoints.first_apply" in events
    assert "setpoints.drift" not in events
    assert "setpoints.reapplied" not in events


async def test_a_device_holding_something_else_after_an_apply_is_drift(store: SiteStore) -> None:
    driver = MemoryDriver("a")
    site, states = make_site(store, driver)
    await poll(states[0])
    await site.reconcile("start")
    driver.holding = Setpoints(reserve_pct=80, grid_charging=True)  # someone else's write
    with capture_logs() as logs:
        assert await site.reconcile("periodic")
    assert site.drift_count == 1
    assert driver.holding == DEFAULT_WANTED
    drift = [e for e in logs if e["event"] == "setpoints.drift"]
    assert len(drift) == 1
    assert (drift[0]["device"], drift[0]["held"]["reserve_pct"], drift[0]["wanted"]["reserve_pct"],
            drift[0]["drift_count"]) == ("a", 80, 20, 1)
    assert "setpoints.reapplied" in [e["event"] for e in logs]

    written = len(driver.written)
    assert await site.reconcile("periodic")  # holding what was applied: nothing to do
    assert (site.drift_count, len(driver.written)) == (1, written)


async def test_a_policy_change_is_not_drift(store: SiteStore) -> None:
    driver = MemoryDriver("a")
    site, states = make_site(store, driver)
    await poll(states[0])
    await site.reconcile("start")
    await site.storm.update("admin", (StormAlert(event="Tornado Warning", source="admin"),))
    assert await site.reconcile("alert")
    assert driver.holding.reserve_pct == 100
    assert site.drift_count == 0


@pytest.mark.parametrize("reports_held", [True, False], ids=["held_in_telemetry", "read_back"])
async def test_factory_values_in_a_reading_are_reapplied_before_the_periodic_pass(
    store: SiteStore, reports_held: bool,
) -> None:
    """A reboot the connection survived: the next poll shows factory values, the site acts on it
    at once (the periodic pass is an hour away)."""
    driver = MemoryDriver("a", reports_held=reports_held)
    site, (state,) = make_site(store, driver)
    poller = DevicePoller(state, on_connect=site.on_connect, on_telemetry=site.on_telemetry,
                          site_id=SITE_ID)
    with capture_logs() as logs:
        async with running(site.control_loop(3600.0)), running(poller.run()):
            await eventually(lambda: driver.holding == DEFAULT_WANTED)  # the first apply
            await eventually(lambda: state.held == DEFAULT_WANTED)
            connects = driver.connects
            driver.reboot()
            await eventually(lambda: site.drift_count == 1)
            await eventually(lambda: driver.holding == DEFAULT_WANTED)
            assert driver.connects == connects  # no reconnect told the site
    drift = [e for e in logs if e["event"] == "setpoints.drift"]
    assert [(e["reason"], e["held"]["reserve_pct"]) for e in drift] == [("device_read", 10)]



async def test_a_setting_that_could_not_be_persisted_is_never_applied(
    store: SiteStore, tmp_path: Path,
) -> None:
    """docs/api.md: an error answer never hides a change that happens later."""
    driver = MemoryDriver("a")
    site, states = make_site(store, driver)
    await poll(states[0])
    assert await site.reconcile("start")

    def lose_the_settings_table() -> None:  # the disk fails under the store, say
        db = sqlite3.connect(tmp_path / "gateway.sqlite3")
        try:
            db.execute("DROP TABLE site_settings")
        finally:
            db.close()

    await asyncio.to_thread(lose_the_settings_table)
    with pytest.raises(Unavailable, match="could not be saved"):
        await site.command("backup", BACKUP_50)
    assert driver.written == [DEFAULT_WANTED]  # nothing reached the device
    assert site.settings.backup_reserve_pct == 20
    assert await site.reconcile("periodic")
    assert driver.holding == DEFAULT_WANTED  # and nothing reaches it later


async def test_a_bug_in_one_reconcile_pass_does_not_end_the_control_loop(store: SiteStore) -> None:
    """A pass that raises something no driver error covers is logged; the next pass runs."""
    driver = MemoryDriver("a")
    site, states = make_site(store, driver)
    await poll(states[0])

    async def bug(_: Setpoints) -> None:
        raise ValueError("a bug in the driver")

    driver.before_write = bug
    loop = asyncio.create_task(site.control_loop(3600.0))
    try:
        with capture_logs() as logs:
            site.changed.set()
            await eventually(lambda: any(e["event"] == "reconcile.crashed" for e in logs))
        driver.before_write = None
        site.changed.set()
        await eventually(lambda: driver.holding == DEFAULT_WANTED)
        assert not loop.done()
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop


@pytest.mark.parametrize(("speed", "interval_s", "revert_s"), [
    (1.0, 30.0, 60),        # the wall clock: the policy's 60 s covers two 30 s passes
    (1.0, 60.0, 120),       # a longer period: two passes
    (120.0, 30.0, 60),      # a pass every 0.25 real s: still 30 domain s
    (1000.0, 30.0, 400),    # passes at most 5 a real second: 200 domain s apart
    (100_000.0, 30.0, 40_000),
    (0.0, 30.0, 60),        # frozen
])
def test_a_battery_command_outlives_two_reconciliation_passes(
    store: SiteStore, speed: float, interval_s: float, revert_s: int,
) -> None:
    states = [DeviceState(device_config("inverter"), MemoryDriver("inverter"))]
    timebase = InProcessClock(lambda: NOW, lambda: speed)
    site = Site(site_config(SITE_ID, [s.config for s in states]), states, store, tz=TZ,
                timebase=timebase)
    site._refresh_s = interval_s  # what control_loop(interval_s) sets
    assert site.revert_s() == revert_s
