"""One poller per device: connect, read on its interval, track quality, log transitions only."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog

from drivers.base import (
    SETPOINT_CAPABILITIES,
    Capability,
    DeviceInfo,
    DeviceTelemetry,
    Driver,
    Quality,
    Setpoints,
)
from drivers.errors import DriverError
from gateway.core.config import DeviceConfig

log = structlog.get_logger("gateway.runtime.poller")

_BACKOFF_CAP_S = 30.0
# A command asks for a fresh poll; a burst of commands must not turn into a burst of polls that
# the next command queues behind.
_REFRESH_MIN_GAP_S = 0.25


@dataclass(eq=False)
class DeviceHandle:
    """A configured device, its driver, and what the gateway last learned from it.

    ``info`` is set by a connect in this process; ``known_info``/``known_caps`` are what an
    earlier discovery learned (persisted), so the site keeps its shape while the device is away.
    """

    config: DeviceConfig
    driver: Driver
    info: DeviceInfo | None = None
    known_info: DeviceInfo | None = None
    known_caps: frozenset[Capability] | None = None
    telemetry: DeviceTelemetry | None = None
    held: Setpoints | None = None  # the setpoints the device held at the last good read
    received_at: float | None = None  # monotonic time of the last good read
    connected: bool = False
    last_error: str | None = None
    failures: int = 0
    polls: int = 0
    missed_polls: int = 0
    refresh: asyncio.Event = field(default_factory=asyncio.Event)
    stale_limit_s: float = 0.0  # copied from the config: read on every request

    def __post_init__(self) -> None:
        self.stale_limit_s = self.config.stale_limit_s

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def identity(self) -> DeviceInfo | None:
        """Nameplate and identity: from this process's connect, else as learned before."""
        return self.info or self.known_info

    @property
    def capabilities(self) -> frozenset[Capability]:
        """What the device can do: discovered now, else learned before, else what the driver
        knows without the device (its configuration; empty for discovering drivers)."""
        if self.info is None and self.known_caps is not None:
            return self.known_caps
        return self.driver.capabilities

    @property
    def is_sink(self) -> bool:
        """Whether the device takes setpoints."""
        return bool(self.capabilities & SETPOINT_CAPABILITIES)

    def age_s(self, now_mono: float) -> float | None:
        """Seconds since the last good read, None when never read."""
        return None if self.received_at is None else now_mono - self.received_at

    def quality(self, now_mono: float) -> Quality:
        """fresh within two poll intervals, stale up to the stale limit, offline beyond it."""
        age = self.age_s(now_mono)
        if age is None or age > self.stale_limit_s:
            return Quality.OFFLINE
        if age > 2 * self.config.poll_interval_s + 0.5:
            return Quality.STALE
        return Quality.FRESH


OnConnect = Callable[[DeviceHandle], Awaitable[None]]
OnTelemetry = Callable[[DeviceHandle], None]


class DevicePoller:
    """Polls one device forever; defective devices back off (capped, jittered)."""

    def __init__(
        self, handle: DeviceHandle, *, on_connect: OnConnect, on_telemetry: OnTelemetry,
        site_id: int,
    ) -> None:
        self.handle = handle
        self._on_connect = on_connect
        self._on_telemetry = on_telemetry
        self._log = log.bind(site_id=site_id, device=handle.name)
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
        try:
            if not handle.connected:
                handle.info = await handle.driver.connect()
                handle.connected = True
                await self._on_connect(handle)
            telemetry = await handle.driver.read()
        except DriverError as exc:
            return self._failed(exc)
        held = telemetry.held
        if held is None and handle.is_sink:
            # Drivers that do not read setpoints with telemetry answer read_back from values
            # they already hold (MQTT): the site checks every reading against what it applied.
            try:
                held = await handle.driver.read_back()
            except DriverError:
                held = None
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

    def _failed(self, exc: DriverError) -> float:
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


# ---- persisted identity (pure) ---------------------------------------------------------------

_INFO_FIELDS = frozenset(DeviceInfo.__dataclass_fields__)


def identity_json(device_type: str, info: DeviceInfo, caps: frozenset[Capability]) -> dict[str, Any]:
    """What discovery learned about a device, as JSON-ready data for storage."""
    return {"type": device_type, "info": asdict(info), "capabilities": sorted(caps)}


def identity_from_json(
    device_type: str, data: dict[str, Any]
) -> tuple[DeviceInfo, frozenset[Capability]] | None:
    """Read back :func:`identity_json`; None when it is of another device type or unreadable.

    Unknown capability names (a newer gateway's row) are skipped.
    """
    if data.get("type") != device_type:
        return None
    raw_info, raw_caps = data.get("info"), data.get("capabilities")
    if not isinstance(raw_info, dict) or not isinstance(raw_caps, list):
        return None
    try:
        info = DeviceInfo(**{k: v for k, v in raw_info.items() if k in _INFO_FIELDS})
    except TypeError:  # a required field missing
        return None
    known = {c.value for c in Capability}
    return info, frozenset(Capability(c) for c in raw_caps if c in known)
