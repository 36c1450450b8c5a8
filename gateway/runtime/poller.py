"""One poller per device: connect, read on its interval, track quality, log transitions only."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

import structlog

from drivers.base import Capability, DeviceInfo
from gateway.runtime.devices import DeviceState, DeviceView
from gateway.runtime.observe import NO_OBSERVER, Observer

log = structlog.get_logger("gateway.runtime.poller")

_BACKOFF_CAP_S = 30.0
# A command asks for a fresh poll; a burst of commands must not turn into a burst of polls that
# the next command queues behind.
_REFRESH_MIN_GAP_S = 0.25


OnConnect = Callable[[DeviceView], Awaitable[None]]
OnTelemetry = Callable[[DeviceView], None]
#: Persist what a discovery learned (device, nameplate, capabilities); False when it could not.
OnIdentity = Callable[[DeviceView, DeviceInfo, frozenset[Capability]], Awaitable[bool]]


class DevicePoller:
    """Polls one device forever and owns its state; defective devices back off (capped, jittered).

    On each (re)connect it records what the device turned out to be (``on_identity`` persists it
    when it changed) and tells the site (``on_connect``); after each good read, ``on_telemetry``.
    With ``stamp`` (a followed clock's ``now``), each reading is stamped with it when it
    arrives: the gateway's domain time, not the driver's wall clock.
    """

    def __init__(
        self, handle: DeviceState, *, on_connect: OnConnect, on_telemetry: OnTelemetry,
        on_identity: OnIdentity | None = None, site_id: int,
        stamp: Callable[[], datetime] | None = None, observer: Observer = NO_OBSERVER,
    ) -> None:
        self.handle = handle
        self._stamp = stamp
        self._on_connect = on_connect
        self._on_telemetry = on_telemetry
        self._on_identity = on_identity
        self._log = log.bind(site_id=site_id, device=handle.name)
        self._site_id = site_id
        self._observer = observer
        self._rng = random.Random()  # noqa: S311 - jitter, not security

    async def run(self) -> None:
        """The poll loop; returns only when cancelled."""
        handle = self.handle
        interval = handle.config.poll_interval_s
        next_due = time.monotonic()
        while True:
            started = time.monotonic()
            delay = await self._poll_once()
            if delay is None:
                next_due += interval
                now = time.monotonic()
                if next_due < now:  # fell behind: count what was skipped, do not burst
                    handle.missed_polls += int((now - next_due) // interval) + 1
                    next_due = now + interval
                wait = next_due - now
            else:
                wait = delay
                next_due = time.monotonic() + delay
            handle.refresh.clear()
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancel that races with
            # the event being set, and the task then never stops.
            try:
                async with asyncio.timeout(wait):
                    await handle.refresh.wait()
                pause = started + min(_REFRESH_MIN_GAP_S, interval) - time.monotonic()
                if pause > 0:
                    await asyncio.sleep(pause)
                next_due = time.monotonic()
            except TimeoutError:
                pass

    async def _poll_once(self) -> float | None:
        """One connect-if-needed + read. Returns a backoff delay after a failure, else None."""
        handle = self.handle
        started = time.perf_counter()
        try:
            if not handle.connected:
                handle.info = await handle.driver.connect()
                handle.connected = True
                await self._learned(handle.info)
                await self._on_connect(handle)
            telemetry = await handle.driver.read()
        except Exception as exc:  # a driver bug too: one bad reading must not end the polling
            self._observer.poll_done(self._site_id, handle.name, time.perf_counter() - started,
                                     type(exc).__name__)
            return self._failed(exc)
        held = telemetry.held
        if held is None and handle.is_sink:
            # Drivers that do not read setpoints with telemetry answer read_back from values
            # they already hold (MQTT): the site checks every reading against what it applied.
            try:
                held = await handle.driver.read_back()
            except Exception:
                held = None
        self._observer.poll_done(self._site_id, handle.name, time.perf_counter() - started, None)
        if self._stamp is not None:
            telemetry = dataclasses.replace(telemetry, taken_at=self._stamp())
        handle.polls += 1
        handle.telemetry = telemetry
        handle.held = held
        handle.received_at = time.monotonic()
        if handle.failures:
            self._log.info("device.recovered", after_failures=handle.failures)
        handle.failures = 0
        handle.last_error = None
        self._on_telemetry(handle)
        return None

    async def _learned(self, info: DeviceInfo) -> None:
        """Remember what a connect found the device to be; persist it when it changed."""
        handle = self.handle
        caps = handle.driver.capabilities
        if (info, caps) == (handle.known_info, handle.known_caps):
            return
        handle.known_info, handle.known_caps = info, caps
        if self._on_identity is not None and not await self._on_identity(handle, info, caps):
            handle.known_info = None  # kept in memory for now, saved on the next connect

    def _failed(self, exc: Exception) -> float:
        handle = self.handle
        handle.failures += 1
        message = f"{type(exc).__name__}: {exc}"
        if handle.failures == 1 or message != handle.last_error:
            self._log.warning("device.failed", error=message, failures=handle.failures)
        handle.last_error = message
        # Go through connect() again on the next success: it rediscovers the device and lets the
        # site reconcile desired settings after a reboot or a dropped connection.
        handle.connected = False
        base = handle.config.poll_interval_s
        backoff = min(_BACKOFF_CAP_S, base * 2.0 ** min(handle.failures - 1, 10))
        return backoff * (0.5 + self._rng.random() / 2)
