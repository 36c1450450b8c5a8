"""DevicePoller against an in-memory device: call order, identity, backoff, recovery, refresh, cancel."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
from collections.abc import AsyncIterator

import pytest
from structlog.testing import capture_logs

from drivers.base import Capability, DeviceInfo
from gateway.runtime.devices import DeviceState, DeviceView
from gateway.runtime.poller import DevicePoller
from tests.fakes import MemoryDriver, device_config
from tests.helpers import eventually


class Callbacks:
    """The site's side of a poller: records each callback in the device's call list."""

    def __init__(self, calls: list[str], *, identity_saved: bool = True) -> None:
        self.calls = calls
        self.identity_saved = identity_saved
        self.identities: list[DeviceInfo] = []

    async def on_connect(self, _: DeviceView) -> None:
        self.calls.append("on_connect")

    def on_telemetry(self, _: DeviceView) -> None:
        self.calls.append("on_telemetry")

    async def on_identity(self, _: DeviceView, info: DeviceInfo, __: frozenset[Capability]) -> bool:
        self.calls.append("on_identity")
        self.identities.append(info)
        return self.identity_saved


def make_poller(driver: MemoryDriver, *, poll_interval_s: float = 0.02,
                identity_saved: bool = True) -> tuple[DevicePoller, DeviceState, Callbacks]:
    state = DeviceState(device_config(driver.name, poll_interval_s=poll_interval_s), driver)
    site = Callbacks(driver.calls, identity_saved=identity_saved)
    poller = DevicePoller(state, on_connect=site.on_connect, on_telemetry=site.on_telemetry,
                          on_identity=site.on_identity, site_id=1)
    return poller, state, site


async def stopped(task: asyncio.Task[None], timeout: float = 5.0) -> bool:
    """Cancel ``task``; whether it stopped within ``timeout``. A task that swallows the cancel is
    asked again (so a failing test fails fast instead of hanging the suite)."""
    for attempt in range(3):
        task.cancel()
        await asyncio.wait({task}, timeout=timeout if attempt == 0 else 1.0)
        if task.done():
            return attempt == 0 and task.cancelled()
    return False


@contextlib.asynccontextmanager
async def running(poller: DevicePoller) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(poller.run())
    try:
        yield task
    finally:
        assert await stopped(task)


async def drop_and_recover(driver: MemoryDriver, state: DeviceState) -> None:
    """The device stops answering for at least one poll, then answers again."""
    polls = state.polls
    driver.reachable = False
    await eventually(lambda: state.failures >= 1)
    driver.reachable = True
    await eventually(lambda: state.polls > polls and state.failures == 0)


async def test_connect_identity_connect_hook_read_then_telemetry() -> None:
    driver = MemoryDriver("a")
    poller, state, _ = make_poller(driver)
    async with running(poller):
        await eventually(lambda: driver.calls.count("on_telemetry") >= 2)
    assert driver.calls[:6] == [
        "a.connect", "on_identity", "on_connect",
        "a.read", "a.read_back", "on_telemetry",  # a sink whose reading has no setpoints
    ]
    assert driver.calls[6:9] == ["a.read", "a.read_back", "on_telemetry"]  # connected: reads only
    assert state.connected
    assert state.info == driver.info
    assert state.telemetry is not None
    assert state.telemetry.soc_pct == 55.0
    assert state.held == driver.holding
    assert state.received_at is not None
    assert state.polls >= 2


async def test_held_setpoints_in_the_reading_need_no_read_back() -> None:
    driver = MemoryDriver("a", reports_held=True)
    poller, state, _ = make_poller(driver)
    async with running(poller):
        await eventually(lambda: state.polls >= 2)
    assert "a.read_back" not in driver.calls
    assert state.held == driver.holding


async def test_identity_is_reported_only_when_it_changed() -> None:
    driver = MemoryDriver("a")
    poller, state, site = make_poller(driver)
    async with running(poller):
        await eventually(lambda: state.polls >= 1)
        await drop_and_recover(driver, state)  # same device again
        assert driver.connects == 2
        assert site.identities == [driver.info]
        assert driver.calls.count("on_connect") == 2  # the site hears of every reconnect

        driver.info = dataclasses.replace(driver.info, firmware_version="2.0")  # an update
        await drop_and_recover(driver, state)
        assert driver.connects == 3
        assert [i.firmware_version for i in site.identities] == ["1.0", "2.0"]
        assert state.known_info == driver.info


async def test_an_identity_not_saved_is_offered_again_on_the_next_connect() -> None:
    driver = MemoryDriver("a")
    poller, state, site = make_poller(driver, identity_saved=False)
    async with running(poller):
        await eventually(lambda: state.polls >= 1)
        await drop_and_recover(driver, state)
    assert site.identities == [driver.info, driver.info]
    assert state.info == driver.info  # kept in memory meanwhile


async def test_failures_are_counted_backed_off_and_logged_once() -> None:
    driver = MemoryDriver("a")
    driver.reachable = False
    base = 0.01
    poller, state, _ = make_poller(driver, poll_interval_s=base)
    with capture_logs() as logs:
        async with running(poller):
            await eventually(lambda: driver.calls.count("a.connect") >= 7)
            failures = state.failures
            assert (state.last_error, state.connected) == (
                "DeviceUnreachable: a: connection refused", False)
            driver.reachable = True
            await eventually(lambda: state.failures == 0)
            assert state.last_error is None
    assert failures >= 6
    assert [e["failures"] for e in logs if e["event"] == "device.failed"] == [1]  # transitions only
    recovered = [e for e in logs if e["event"] == "device.recovered"]
    assert len(recovered) == 1
    assert recovered[0]["after_failures"] >= failures
    # The retry after the n-th failure waits at least half of base x 2^(n-1) (the jitter's
    # floor); upper bounds are the next test's: a busy machine only ever makes gaps longer.
    attempts = driver.connect_at
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    for n, gap in enumerate(gaps[:6], start=1):
        assert gap >= 0.5 * base * 2 ** (n - 1) - 0.001, (n, gaps)


async def test_a_driver_bug_in_one_reading_does_not_stop_polling_for_good() -> None:
    """A reading the driver cannot decode (a bug, a value no codec expected) fails that poll; the
    device is polled again, not dropped until the gateway restarts."""
    driver = MemoryDriver("a")
    poller, state, _ = make_poller(driver)
    with capture_logs() as logs:
        async with running(poller) as task:
            await eventually(lambda: state.polls >= 1)
            driver.read_error = ValueError("register value out of range")
            await eventually(lambda: state.failures >= 1 or task.done())
            assert not task.done()
            assert state.last_error == "ValueError: register value out of range"
            driver.read_error = None
            await eventually(lambda: state.failures == 0)
    assert [e["error"] for e in logs if e["event"] == "device.failed"] == [
        "ValueError: register value out of range"]


async def test_backoff_is_capped_and_jittered() -> None:
    """The delay after the n-th failure in a row is in [0.5, 1) x min(30 s, interval x 2^(n-1))."""
    driver = MemoryDriver("a")
    driver.reachable = False
    poller, state, _ = make_poller(driver, poll_interval_s=1.0)
    delays: list[float] = []
    for _ in range(20):
        delay = await poller._poll_once()  # one poll, without waiting out the backoff
        assert delay is not None
        delays.append(delay)
    assert state.failures == 20
    for n, delay in enumerate(delays, start=1):
        ceiling = min(30.0, 1.0 * 2 ** (n - 1))
        assert 0.5 * ceiling <= delay < ceiling, (n, delay)
    capped = delays[5:]  # 2^5 s > 30 s
    assert max(capped) < 30.0
    assert len(set(capped)) > 1  # jittered: pollers failing together do not retry together


async def test_a_refresh_request_polls_early_but_never_in_a_burst() -> None:
    driver = MemoryDriver("a")
    poller, state, _ = make_poller(driver, poll_interval_s=3600.0)
    async with running(poller):
        await eventually(lambda: state.polls == 1)
        state.request_refresh()
        await eventually(lambda: state.polls == 2)  # not an hour later

        def ask_again() -> int:  # a burst of commands, each asking for a poll
            state.request_refresh()
            return state.polls

        await eventually(ask_again, lambda polls: polls >= 6, interval=0.005)
    gaps = [later - earlier for earlier, later in itertools.pairwise(driver.read_at)]
    # The poller keeps a quarter second between refresh-driven polls; a burst would be ~5 ms.
    assert min(gaps[1:]) >= 0.2, gaps


@pytest.mark.parametrize("where", ["waiting", "reading", "refreshing", "backing_off"])
async def test_it_stops_on_cancel(where: str) -> None:
    driver = MemoryDriver("a")
    poller, state, _ = make_poller(driver, poll_interval_s=3600.0 if where != "backing_off" else 60.0)
    driver.reads_hang = where == "reading"
    driver.reachable = where != "backing_off"
    async with running(poller):
        await eventually(lambda: driver.calls.count("a.read") + state.failures >= 1)
        if where == "refreshing":
            state.request_refresh()
            await asyncio.sleep(0)  # the poller wakes and pauses before its next poll
    # running() asserts that the poller stopped on the first cancel


async def test_a_cancel_racing_a_refresh_still_stops_it() -> None:
    """The refresh event set in the same loop turn as the cancel (asyncio.wait_for on 3.11 can
    swallow such a cancel; the poller must not)."""

    async def stops() -> bool:
        poller, state, _ = make_poller(MemoryDriver("a"), poll_interval_s=3600.0)
        task = asyncio.create_task(poller.run())
        await eventually(lambda: state.polls >= 1)
        state.request_refresh()
        return await stopped(task)

    for attempt in range(20):
        assert await stops(), attempt
