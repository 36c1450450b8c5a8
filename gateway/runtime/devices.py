"""A device's live state, owned by its poller, and the read-only view everyone else gets of it."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from drivers.base import (
    SETPOINT_CAPABILITIES,
    Capability,
    DeviceInfo,
    DeviceTelemetry,
    Driver,
    Quality,
    Setpoints,
)
from gateway.core.config import DeviceConfig


class DeviceView(Protocol):
    """What the site, history and the HTTP floor may know of a device: read-only.

    Only the device's poller writes its state (``DeviceState``); everyone else reads it through
    this view, so one question — who changed this? — has one answer.
    """

    @property
    def config(self) -> DeviceConfig: ...
    @property
    def driver(self) -> Driver:
        """The device's driver: commands go through it (its transport serialises them)."""
        ...
    @property
    def name(self) -> str: ...
    @property
    def identity(self) -> DeviceInfo | None: ...
    @property
    def capabilities(self) -> frozenset[Capability]: ...
    @property
    def is_sink(self) -> bool: ...
    @property
    def telemetry(self) -> DeviceTelemetry | None: ...
    @property
    def held(self) -> Setpoints | None: ...
    @property
    def received_at(self) -> float | None: ...
    @property
    def connected(self) -> bool: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def failures(self) -> int: ...
    @property
    def polls(self) -> int: ...
    @property
    def missed_polls(self) -> int: ...
    @property
    def stale_limit_s(self) -> float: ...
    def age_s(self, now_mono: float) -> float | None: ...
    def quality(self, now_mono: float) -> Quality: ...
    def request_refresh(self) -> None:
        """Ask the poller for a read now (after a command, so live_status shows it)."""
        ...


@dataclass(eq=False)
class DeviceState:
    """A configured device, its driver, and what the gateway last learned from it.

    Written only by the device's ``DevicePoller`` (and by the gateway when it loads what an
    earlier run learned); read by everyone else as a ``DeviceView``. ``info`` is set by a connect
    in this process; ``known_info``/``known_caps`` are what an earlier discovery learned
    (persisted), so the site keeps its shape while the device is away.
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

    def request_refresh(self) -> None:
        """Wake the poller for a read now."""
        self.refresh.set()


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
