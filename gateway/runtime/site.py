"""Site: its devices, latest telemetry, desired settings and the verified command pipeline."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import math
import sqlite3
import time
import zoneinfo
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from drivers.base import Capability, Quality, Setpoints, holds
from drivers.errors import DeviceUnreachable, DriverError
from gateway.core import policy
from gateway.core.config import SiteConfig
from gateway.core.errors import (
    DeviceFailed,
    GatewayError,
    NotConfirmed,
    SiteOffline,
    Unavailable,
    refused,
)
from gateway.core.planner import Action
from gateway.core.reading import SiteReading, combine
from gateway.core.settings import SiteSettings
from gateway.core.tariff import Tariff
from gateway.runtime.clock import Clock, Timebase, utc_now
from gateway.runtime.devices import DeviceView
from gateway.runtime.observe import NO_OBSERVER, Observer
from gateway.runtime.storage import StorageError
from gateway.runtime.storage.sites import SiteStore
from gateway.runtime.storm import StormWatch

if TYPE_CHECKING:
    from gateway.runtime.ocpp.state import ChargerState

log = structlog.get_logger("gateway.runtime.site")


class Site:
    """One energy site: owns its desired settings and serialises every command to its devices."""

    def __init__(
        self, config: SiteConfig, devices: Sequence[DeviceView], store: SiteStore, *,
        command_timeout_s: float = 5.0, clock: Clock = utc_now, tz: zoneinfo.ZoneInfo | None = None,
        timebase: Timebase | None = None, observer: Observer = NO_OBSERVER,
        storm: StormWatch | None = None,
    ) -> None:
        self.config = config
        self.id = config.energy_site_id
        # pass tz loaded off the loop: ZoneInfo reads the tz database on first use
        self.tz = tz or zoneinfo.ZoneInfo(config.time_zone)
        self.devices: Sequence[DeviceView] = devices
        self.settings = SiteSettings()
        # The settings the devices last confirmed (a command's read-back or a reconciliation
        # pass); what Home Assistant is shown: a command kept while offline is not in it yet.
        self.confirmed = self.settings
        self.drift_count = 0
        self.reconciles = 0  # reconciliation passes that found every device online (health)
        self.applied: Setpoints | None = None
        self._store = store
        self._command_timeout_s = command_timeout_s
        # domain time (runtime/clock.py): tariff periods, the journal, periodic reconciliation
        self._timebase = timebase or Timebase(clock)
        self._clock = self._timebase.now
        # every alert source of the site (docs/api.md, "Storm watch"); its changes wake the loop
        self.storm = storm or StormWatch(config.energy_site_id, clock=self._clock)
        self.storm.on_change = lambda: self._owe("alert")
        self._refresh_s = DEFAULT_REFRESH_S  # the control loop's period, in domain seconds
        self._observer = observer
        self._lock = asyncio.Lock()
        self._log = log.bind(site_id=self.id)
        self.changed = asyncio.Event()  # wakes the control loop
        self._owed: str | None = "start"  # why a reconciliation pass is owed, until one completes
        self._applied_once = False  # whether this process has applied setpoints yet
        self._checking_held = False  # compare each reading with ``applied`` (after a good pass)
        self.telemetry_version = 0  # bumped on every reading: keys caches of derived answers
        self.chargers: Sequence[ChargerState] = ()  # its OCPP charge points (set by the Gateway)
        # The planner's command for the current step (runtime/planner.py); None = no plan, so
        # autonomous uses the two-level tariff rule.
        self.plan_action: Action | None = None

    async def load(self) -> None:
        """Restore persisted settings (defaults on first start)."""
        stored = await self._store.load_settings(self.id)
        if stored is not None:
            self.settings = SiteSettings.from_json(stored)
        self.confirmed = self.settings  # what the devices were last told, until a pass checks

    # ---- reads -------------------------------------------------------------------------------

    def offline(self, now_mono: float | None = None) -> list[DeviceView]:
        """Devices whose data is older than their stale limit (or never arrived)."""
        now = time.monotonic() if now_mono is None else now_mono
        return [d for d in self.devices if d.quality(now) is Quality.OFFLINE]

    def require_online(self, devices: Sequence[DeviceView] | None = None) -> None:
        """Raise ``SiteOffline`` naming the offline devices and why."""
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
            raise SiteOffline(f"site {self.id}: device offline: {', '.join(parts)}")

    def reading(self) -> SiteReading:
        """The latest site view; ``SiteOffline`` when any device is offline."""
        self.require_online()
        return combine([d.telemetry for d in self.devices if d.telemetry is not None])

    def storm_alert(self, reading: SiteReading | None = None) -> bool:
        """Whether a storm alert is active (from any source: NWS, MQTT, the admin call, a device)."""
        return self.storm.active(self._clock()) or bool(reading and reading.storm_alert)

    def capabilities(self) -> frozenset[Capability]:
        """Union of the capabilities of the site's devices (as discovered or learned before)."""
        caps: set[Capability] = set()
        for d in self.devices:
            caps |= d.capabilities
        return frozenset(caps)

    def policy_input(self, reading: SiteReading) -> policy.SitePolicyInput:
        """What the control policy needs from telemetry and nameplates."""
        infos = [i for i in (d.identity for d in self.devices) if i is not None]
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
            now.astimezone(self.tz), alerts, revert_s=self.revert_s(),
            plan=self.plan_action,
        )

    def revert_s(self) -> int:
        """Lifetime of a battery command on the device, in its (domain) seconds.

        The control loop refreshes battery commands every pass; the lifetime covers two passes,
        and a followed clock at high speed stretches a pass (``Timebase.domain_span_s``).
        """
        span_s = self._timebase.domain_span_s(self._refresh_s)
        return min(MAX_REVERT_S, max(policy.DEFAULT_REVERT_S, math.ceil(2 * span_s)))

    def set_plan_action(self, action: Action | None) -> None:
        """The planner moved on to another command: apply it on the next control pass."""
        self.plan_action = action
        self._owe("plan")

    def storm_mode_active(self, reading: SiteReading) -> bool:
        """live_status.storm_mode_active: the setting is on and an alert is active."""
        return policy.storm_mode_active(self.settings, policy.Alerts(storm=self.storm_alert(reading)))

    async def journal(self, limit: int) -> list[dict[str, Any]]:
        """The site's most recent commands and their outcomes, newest first."""
        return await self._store.commands(self.id, limit)

    # ---- commands ----------------------------------------------------------------------------

    def sinks(self) -> list[DeviceView]:
        """Devices that take setpoints (as discovered now or learned before)."""
        return [d for d in self.devices if d.is_sink]

    async def command(self, name: str, changes: Mapping[str, Any]) -> None:
        """Persist the new desired settings, write them through the drivers, confirm by read-back.

        The one rule for failures (docs/api.md "When a command fails"): a command the device
        refused (``core.errors.refused``: rejected, or beyond what it can honour) changes
        nothing: the settings roll back, devices already written go back to the previous
        setpoints, the journal says ``rejected``. A command that could not be delivered or
        confirmed (site offline, device unreachable, not confirmed in time) is kept: the gateway
        applies it when the device is back, and the error description says so.
        """
        began = time.perf_counter()  # the latency a caller sees, a wait for the lock included
        outcome = ["not_saved"]  # the journal status it ends with, set by _command
        try:
            await self._command(name, changes, outcome)
        finally:
            self._observer.command_done(self.id, name, outcome[0], time.perf_counter() - began)

    async def _command(self, name: str, changes: Mapping[str, Any], outcome: list[str]) -> None:
        """``command`` under the site's lock; ``outcome[0]`` becomes the journal's final status."""
        async with self._lock:
            now = self._clock()
            previous = self.settings
            settings = dataclasses.replace(previous, **changes)
            try:
                journal_id = await self._store.journal(
                    self.id, name, journal_changes(changes), now)
                await self._store.save_settings(self.id, settings.to_json(), now)
            except (sqlite3.Error, StorageError) as exc:
                self._log.error("command.not_saved", command=name, error=str(exc))
                raise Unavailable(f"site {self.id}: the new setting could not be saved ({exc}); "
                                  f"{ROLLED_BACK}") from exc
            self.settings = settings  # only once saved: a failed save changes nothing
            outcome[0] = "interrupted"  # until the pipeline below ends (a cancel leaves it so)
            started = time.perf_counter()
            confirmed: list[DeviceView] = []
            reading: SiteReading | None = None
            writing = False
            try:
                reading = self.reading()  # the one online check of the command
                wanted = self.setpoints(reading, now)
                writing = True
                await self._apply(wanted, confirmed)
            except GatewayError as exc:
                if refused(exc):
                    await self._roll_back(previous, reading, confirmed, now)
                    exc.description = f"{exc.description}; {ROLLED_BACK}"
                    outcome[0] = "rejected"
                    await self._finish(journal_id, name, "rejected", exc)
                    raise
                if writing:  # some device may hold part of it: not what was last applied
                    self.applied = None
                    self._checking_held = False
                if unreachable(exc):
                    self._owe("command")  # applied as soon as every device reports again
                exc.description = f"{exc.description}; {KEPT}"
                outcome[0] = "kept"
                await self._finish(journal_id, name, "kept", exc)
                raise
            self.confirmed = self.settings
            outcome[0] = "confirmed"
            await self._store.finish(journal_id, "confirmed", "", self._clock())
            self._log.info("command.applied", command=name, verified=True,
                           latency_ms=round((time.perf_counter() - started) * 1000, 2))

    async def _finish(self, journal_id: int, name: str, status: str, exc: GatewayError) -> None:
        await self._store.finish(journal_id, status, exc.description, self._clock())
        self._log.warning("command.failed", command=name, outcome=status,
                          error=type(exc).__name__, detail=exc.description)

    async def _roll_back(
        self, previous: SiteSettings, reading: SiteReading | None, confirmed: list[DeviceView],
        now: datetime,
    ) -> None:
        """Undo a rejected command: previous settings in memory and SQLite, and on every device
        that already confirmed the new setpoints (caller holds the lock)."""
        self.settings = previous
        await self._store.save_settings(self.id, previous.to_json(), now)
        if confirmed and reading is not None:
            try:
                await self._apply(self.setpoints(reading, now), devices=confirmed)
            except GatewayError as exc:
                self._log.warning("command.rollback_failed", error=exc.description,
                                  devices=[d.name for d in confirmed])
        # The device that refused may hold part of the write: check it when it answers again.
        self.applied = None
        self._checking_held = False
        self._owe("rollback")

    async def _apply(
        self, setpoints: Setpoints, confirmed: list[DeviceView] | None = None, *,
        devices: list[DeviceView] | None = None,
    ) -> None:
        """Write to every sink (or ``devices``) and wait for each read-back (caller holds the lock).

        Each device that confirmed is appended to ``confirmed``.
        """
        targets = self.sinks() if devices is None else devices
        try:
            async with asyncio.timeout(self._command_timeout_s):
                for handle in targets:
                    try:
                        await handle.driver.apply(setpoints)
                    except DriverError as exc:
                        raise DeviceFailed(handle.name, exc) from exc
                    if confirmed is not None:
                        confirmed.append(handle)
                    handle.request_refresh()  # poll now so live_status reflects the change
        except TimeoutError:
            raise NotConfirmed(
                f"site {self.id}: devices did not confirm within {self._command_timeout_s:g} s"
            ) from None
        if devices is None:
            self.applied = setpoints

    # ---- reconciliation ------------------------------------------------------------------------

    async def reconcile(self, reason: str) -> bool:
        """Bring devices to the desired setpoints: detect drift, re-apply, count it.

        Drift is a device holding something other than what the gateway last applied (a reboot,
        someone else's write). Neither a policy change (tariff period, alert, new settings) nor
        the first application after the gateway starts (or after an unconfirmed write) is drift.
        Returns True when the devices hold the desired setpoints afterwards.
        """
        async with self._lock:
            try:
                reading = self.reading()
            except SiteOffline:
                return self._failed(reason, transient=True)  # the next reading tries again
            self.reconciles += 1
            wanted = self.setpoints(reading, self._clock())
            reference = self.applied or wanted
            off: list[tuple[DeviceView, Setpoints]] = []
            for handle in self.sinks():
                try:
                    held = await handle.driver.read_back()
                except DriverError as exc:
                    self._log.warning("reconcile.failed", reason=reason, device=handle.name,
                                      error=str(exc))
                    return self._failed(reason, transient=isinstance(exc, DeviceUnreachable))
                if not holds(held, reference, handle.capabilities):
                    off.append((handle, held))
            for handle, held in off:
                self._log_off(handle, held, wanted, reason)
            # Battery commands carry a revert timeout on the device: refresh them every cycle.
            if not off and self.applied == wanted and wanted.battery_w is None:
                self.confirmed = self.settings
                return self._settled(ok=True)
            try:
                await self._apply(wanted)
            except GatewayError as exc:
                self._log.warning("reconcile.failed", reason=reason, error=exc.description)
                return self._failed(reason, transient=unreachable(exc))
            if off and self._applied_once:
                self._log.info("setpoints.reapplied", reason=reason)
                self._observer.reapplied(self.id)
            self._applied_once = True
            self.confirmed = self.settings
            return self._settled(ok=True)

    def _log_off(self, handle: DeviceView, held: Setpoints, wanted: Setpoints, reason: str) -> None:
        fields = {"device": handle.name, "reason": reason, "held": _asdict(held),
                  "wanted": _asdict(wanted)}
        if self.applied is not None:
            self.drift_count += 1
            self._log.warning("setpoints.drift", drift_count=self.drift_count, **fields)
        elif not self._applied_once:
            # The device holds what it held before this process ran: not drift.
            self._log.info("setpoints.first_apply", **fields)
        else:
            # After a write that was not confirmed the gateway does not know what it left.
            self._log.info("setpoints.unconfirmed_apply", **fields)

    def _settled(self, *, ok: bool) -> bool:
        self._checking_held = ok
        return ok

    def _failed(self, reason: str, *, transient: bool) -> bool:
        if transient:
            # A device offline, or the connection dropped under the pass (a reboot, say; the
            # transport may reconnect without a failed poll): the next reading tries again.
            if self._owed is None:
                self._owed = reason
            return False
        # The device answers but will not take or confirm the setpoints: the periodic pass, a
        # reconnect or a new command tries again, not every poll (a device that ignores writes
        # would hold the site's lock for a confirm timeout per poll).
        return self._settled(ok=False)

    def _owe(self, reason: str) -> None:
        """Ask the control loop for a reconciliation pass, kept until one completes."""
        if self._owed is None:
            self._owed = reason
        self.changed.set()

    async def on_connect(self, handle: DeviceView) -> None:
        """A device (re)connected: check and re-apply its settings."""
        info = handle.identity
        self._log.info("device.connected", device=handle.name,
                       model=info.model if info else None)
        self._owe("reconnect")

    def on_telemetry(self, handle: DeviceView) -> None:
        """New telemetry arrived; wake the control loop when something policy-relevant changed."""
        self.telemetry_version += 1
        # a device's own storm bit (only where its driver options name one) is one more source
        if handle.telemetry is not None:
            self.storm.device_reading(handle.name, handle.telemetry.storm_alert)
        applied = self.applied
        if (applied is not None and self._checking_held and handle.held is not None
                and not self._lock.locked()  # a write in progress shows half-applied values
                and not holds(handle.held, applied, handle.capabilities)):
            # The device no longer holds what was applied (a reboot to factory values, a
            # reconnect the transport did on its own, someone else's write): act now.
            self._checking_held = False
            self._owe("device_read")
        if self._owed is not None:
            self.changed.set()

    async def control_loop(self, interval_s: float) -> None:
        """Keep devices on the desired setpoints: on (re)connect, on drift seen in a reading, on
        alerts, and periodically. A wake-up while a device is offline is kept, not dropped.

        ``interval_s`` is in domain time: following a fast simulator, the passes (which refresh
        battery commands before their device-side timer reverts them) come as fast.
        """
        self._refresh_s = interval_s
        while True:
            if await self._timebase.wait(self.changed, interval_s):
                reason = self._owed or "event"
            else:
                reason = self._owed or "periodic"
            # Taken now: a reason owed during the pass (another reconnect) makes another pass.
            self._owed = None
            self.changed.clear()
            try:
                await self.reconcile(reason)
            except Exception:  # a bug in one pass must not end the site's control for good
                self._log.exception("reconcile.crashed", reason=reason)


DEFAULT_REFRESH_S = 30.0  # gateway.reconcile_interval_s's default, until control_loop runs
MAX_REVERT_S = 65_535  # SunSpec 124 InOutWRte_RvrtTms is a uint16

ROLLED_BACK = "nothing was changed: the previous settings stay in force"
KEPT = ("the new setting is saved and the gateway applies it when the device is back "
        "(check site_info or live_status)")


def unreachable(exc: GatewayError) -> bool:
    """Whether ``exc`` means a device could not be reached (the site acts when it is back)."""
    return isinstance(exc, SiteOffline) or (
        isinstance(exc, DeviceFailed) and isinstance(exc.cause, DeviceUnreachable))


def journal_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """A command's validated changes as the journal keeps them: bounded, a tariff as a summary."""
    out: dict[str, Any] = {}
    for key, value in changes.items():
        if isinstance(value, Tariff):
            wire = orjson.dumps(value.wire(), option=orjson.OPT_SORT_KEYS)
            content = value.content
            out[key] = {"name": (content.name or "")[:64], "code": (content.code or "")[:64],
                        "sha256": hashlib.sha256(wire).hexdigest()[:16], "bytes": len(wire)}
        else:
            out[key] = value
    return out


def _asdict(sp: Setpoints) -> dict[str, Any]:
    return {k: getattr(sp, k) for k in ("reserve_pct", "grid_charging", "export_limit_w",
                                        "battery_w", "revert_s")}
