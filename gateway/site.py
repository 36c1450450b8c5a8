"""Site: its devices, latest telemetry, desired settings and the verified command pipeline."""

from __future__ import annotations

import asyncio
import time
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from drivers.base import Capability, DeviceTelemetry, Quality, Setpoints, holds
from drivers.errors import DriverError
from gateway import policy
from gateway.config import SiteConfig
from gateway.fleet import DeviceNotConfirmed, DeviceOffline, FleetError, from_driver_error
from gateway.poller import DeviceHandle
from gateway.settings import SiteSettings
from gateway.store import Store

log = structlog.get_logger("gateway.site")

_SETPOINT_CAPS = frozenset({
    Capability.BACKUP_RESERVE, Capability.GRID_CHARGING, Capability.EXPORT_LIMIT,
    Capability.BATTERY_POWER,
})

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The wall clock, the only place the gateway reads it."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class SiteReading:
    """Site-level sums over fresh devices (DESIGN §2 signs), with the newest timestamp."""

    taken_at: datetime
    solar_w: float
    battery_w: float
    grid_w: float
    load_w: float
    soc_pct: float | None
    capacity_wh: float | None
    grid_up: bool | None
    storm_alert: bool


def combine(readings: list[DeviceTelemetry]) -> SiteReading:
    """Sum device readings into the site view; load is derived so the balance always holds."""
    solar = sum(r.solar_w or 0.0 for r in readings)
    battery = sum(r.battery_w or 0.0 for r in readings)
    grid = sum(r.grid_w or 0.0 for r in readings)
    with_soc = [r for r in readings if r.soc_pct is not None]
    capacity = sum(r.capacity_wh or 0.0 for r in with_soc)
    if capacity > 0:
        soc: float | None = sum((r.soc_pct or 0.0) * (r.capacity_wh or 0.0)
                                for r in with_soc) / capacity
    elif with_soc:
        soc = sum(r.soc_pct or 0.0 for r in with_soc) / len(with_soc)
    else:
        soc = None
    grid_flags = [r.grid_up for r in readings if r.grid_up is not None]
    return SiteReading(
        taken_at=max(r.taken_at for r in readings),
        solar_w=solar, battery_w=battery, grid_w=grid, load_w=solar + battery + grid,
        soc_pct=soc, capacity_wh=capacity or None,
        grid_up=all(grid_flags) if grid_flags else None,
        storm_alert=any(r.storm_alert for r in readings),
    )


class Site:
    """One energy site: owns its desired settings and serialises every command to its devices."""

    def __init__(
        self, config: SiteConfig, devices: list[DeviceHandle], store: Store, *,
        command_timeout_s: float = 5.0, clock: Clock = utc_now, tz: zoneinfo.ZoneInfo | None = None,
    ) -> None:
        self.config = config
        self.id = config.energy_site_id
        # pass tz loaded off the loop: ZoneInfo reads the tz database on first use
        self.tz = tz or zoneinfo.ZoneInfo(config.time_zone)
        self.devices = devices
        self.settings = SiteSettings()
        self.admin_storm_alert = False
        self.drift_count = 0
        self.reconciles = 0  # completed reconciliation passes (health, tests)
        self.applied: Setpoints | None = None
        self._store = store
        self._command_timeout_s = command_timeout_s
        self._clock = clock
        self._lock = asyncio.Lock()
        self._log = log.bind(site_id=self.id)
        self.changed = asyncio.Event()  # wakes the control loop (new telemetry, alert change)
        self._last_storm = False
        self.telemetry_version = 0  # bumped on every reading: keys caches of derived answers
        self.live_status_cache: tuple[tuple[int, SiteSettings, bool], bytes] | None = None

    async def load(self) -> None:
        """Restore persisted settings (defaults on first start)."""
        stored = await self._store.load_settings(self.id)
        if stored is not None:
            self.settings = SiteSettings.from_json(stored)

    # ---- reads -------------------------------------------------------------------------------

    def offline(self, now_mono: float | None = None) -> list[DeviceHandle]:
        """Devices whose data is older than their stale limit (or never arrived)."""
        now = time.monotonic() if now_mono is None else now_mono
        return [d for d in self.devices if d.quality(now) is Quality.OFFLINE]

    def require_online(self, devices: list[DeviceHandle] | None = None) -> None:
        """Raise 408 naming the offline devices and why."""
        now = time.monotonic()
        checked = self.devices if devices is None else devices
        for d in checked:  # fast path: every device fresh enough (this runs per read request)
            if d.received_at is None or now - d.received_at > d.stale_limit_s:
                break
        else:
            return
        down = [d for d in checked if d.quality(now) is Quality.OFFLINE]
        if down:
            parts = []
            for d in down:
                age = d.age_s(now)
                why = d.last_error or "no data yet"
                seen = "never read" if age is None else f"last data {age:.1f} s ago"
                parts.append(f"{d.name} ({seen}; {why})")
            raise DeviceOffline(f"site {self.id}: device offline: {', '.join(parts)}")

    def reading(self) -> SiteReading:
        """The latest site view; 408 when any device is offline."""
        self.require_online()
        return combine([d.telemetry for d in self.devices if d.telemetry is not None])

    def storm_alert(self, reading: SiteReading | None = None) -> bool:
        """Whether a storm alert is active (from a device or the admin API)."""
        if self.admin_storm_alert:
            return True
        return bool(reading and reading.storm_alert)

    def capabilities(self) -> frozenset[Capability]:
        """Union of the capabilities of the site's devices."""
        caps: set[Capability] = set()
        for d in self.devices:
            if d.info is not None:
                caps |= d.driver.capabilities
        return frozenset(caps)

    def policy_input(self, reading: SiteReading) -> policy.SitePolicyInput:
        """What the control policy needs from telemetry and nameplates."""
        infos = [d.info for d in self.devices if d.info is not None]
        return policy.SitePolicyInput(
            soc_pct=reading.soc_pct,
            solar_w=reading.solar_w, load_w=reading.load_w,
            grid_up=reading.grid_up if reading.grid_up is not None else True,
            max_charge_w=sum(i.max_charge_w or 0.0 for i in infos),
            max_discharge_w=sum(i.max_discharge_w or 0.0 for i in infos),
        )

    def setpoints(self, reading: SiteReading, now: datetime) -> Setpoints:
        """Setpoints the policy wants now."""
        alerts = policy.Alerts(storm=self.storm_alert(reading))
        return policy.compute_setpoints(
            self.settings, self.policy_input(reading), self.settings.tariff,
            now.astimezone(self.tz), alerts,
        )

    def storm_mode_active(self, reading: SiteReading) -> bool:
        """live_status.storm_mode_active: the setting is on and an alert is active."""
        return policy.storm_mode_active(self.settings, policy.Alerts(storm=self.storm_alert(reading)))

    # ---- commands ----------------------------------------------------------------------------

    def sinks(self) -> list[DeviceHandle]:
        """Devices that take setpoints."""
        return [d for d in self.devices if d.driver.capabilities & _SETPOINT_CAPS]

    async def command(
        self, name: str, body: dict[str, Any], change: Callable[[SiteSettings], SiteSettings]
    ) -> None:
        """Persist the new desired settings, write them through the drivers, confirm by read-back.

        Raises a FleetError (408 offline, 504 not confirmed, ...) with the setting kept; it is
        re-applied when the device returns.
        """
        async with self._lock:
            now = self._clock()
            journal_id = await self._store.journal(self.id, name, body, now)
            self.settings = change(self.settings)
            await self._store.save_settings(self.id, self.settings.to_json(), now)
            started = time.perf_counter()
            try:
                self.require_online(self.sinks())
                await self._apply(self.setpoints(self.reading(), now))
            except FleetError as exc:
                await self._store.finish(journal_id, exc.error, exc.description, self._clock())
                self._log.warning("command.failed", command=name, status=exc.status,
                                  error=exc.error, detail=exc.description)
                raise
            await self._store.finish(journal_id, "confirmed", "", self._clock())
            self._log.info("command.applied", command=name, verified=True,
                           latency_ms=round((time.perf_counter() - started) * 1000, 2))

    async def _apply(self, setpoints: Setpoints) -> None:
        """Write to every sink and wait for each read-back (caller holds the lock)."""
        try:
            async with asyncio.timeout(self._command_timeout_s):
                for handle in self.sinks():
                    try:
                        await handle.driver.apply(setpoints)
                    except DriverError as exc:
                        raise from_driver_error(exc, f"device {handle.name}") from exc
                    handle.refresh.set()  # poll now so live_status reflects the change
        except TimeoutError:
            raise DeviceNotConfirmed(
                f"site {self.id}: devices did not confirm within {self._command_timeout_s:g} s"
            ) from None
        self.applied = setpoints

    async def reconcile(self, reason: str) -> bool:
        """Bring devices to the desired setpoints: detect drift, re-apply, count it.

        Drift is a device holding something other than what the gateway last applied (a reboot,
        someone else's write). A policy change (tariff period, alert, new settings) is not drift.
        Returns True when the devices hold the desired setpoints afterwards.
        """
        async with self._lock:
            self.reconciles += 1
            try:
                reading = self.reading()
            except DeviceOffline:
                return False
            wanted = self.setpoints(reading, self._clock())
            drifted = []
            for handle in self.sinks():
                try:
                    held = await handle.driver.read_back()
                except DriverError:
                    return False
                caps = handle.driver.capabilities
                reference = self.applied or wanted
                if not holds(held, reference, caps):
                    drifted.append((handle, held))
            for handle, held in drifted:
                self.drift_count += 1
                self._log.warning("setpoints.drift", device=handle.name, reason=reason,
                                  held=_asdict(held), wanted=_asdict(wanted),
                                  drift_count=self.drift_count)
            # Battery commands carry a revert timeout on the device: refresh them every cycle.
            if not drifted and self.applied == wanted and wanted.battery_w is None:
                return True
            try:
                await self._apply(wanted)
            except FleetError as exc:
                self._log.warning("reconcile.failed", reason=reason, error=exc.description)
                return False
            if drifted:
                self._log.info("setpoints.reapplied", reason=reason)
            return True

    async def on_connect(self, handle: DeviceHandle) -> None:
        """A device (re)connected: wake the control loop to re-apply the desired settings."""
        self._log.info("device.connected", device=handle.name,
                       model=handle.info.model if handle.info else None)
        self.applied = None
        self.changed.set()

    def on_telemetry(self, handle: DeviceHandle) -> None:
        """New telemetry arrived; wake the control loop when something policy-relevant changed."""
        self.telemetry_version += 1
        # site-level: an alert reported by any device (or the admin API) is the site's alert
        storm = self.admin_storm_alert or any(
            d.telemetry is not None and bool(d.telemetry.storm_alert) for d in self.devices)
        if storm != self._last_storm:
            self._last_storm = storm
            self._log.info("storm_alert.changed", active=storm)
            self.changed.set()
        if self.applied is None:
            self.changed.set()

    async def control_loop(self, interval_s: float) -> None:
        """Keep devices on the desired setpoints: on (re)connect, on alerts, and periodically."""
        while True:
            try:
                async with asyncio.timeout(interval_s):  # not wait_for: see DevicePoller.run
                    await self.changed.wait()
                reason = "event"
            except TimeoutError:
                reason = "periodic"
            self.changed.clear()
            try:
                self.require_online(self.sinks())
            except DeviceOffline:
                continue
            await self.reconcile(reason)


def _asdict(sp: Setpoints) -> dict[str, Any]:
    return {k: getattr(sp, k) for k in ("reserve_pct", "grid_charging", "export_limit_w",
                                        "battery_w", "revert_s")}
