"""A simulated EV charger and its car, sans-IO: connector states, charging profiles, the meter."""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from simulator.config import OcppChargerConfig

#: A car takes no current below this (IEC 61851).
MIN_CURRENT_A = 6.0
#: Transaction messages kept while the central system is unreachable (older ones are dropped).
QUEUE_MAX = 1000


@dataclass(slots=True)
class Outgoing:
    """A message the charger owes the central system; ``local_tx`` names its transaction."""

    action: str
    payload: dict[str, Any]
    local_tx: int | None = None
    transactional: bool = False  # kept across disconnects (Start/Stop/MeterValues of a tx)


@dataclass(slots=True)
class _Profile:
    limit_a: float
    until: datetime | None  # when its schedule's duration ends (None: open-ended)
    transaction_id: int | None = None


@dataclass(slots=True)
class EvCharger:
    """One connector, its meter and the car plugged into it, on the home's simulated time.

    The connector walks Available → Preparing (plugged) → Charging / SuspendedEV (car full) /
    SuspendedEVSE (limit under 6 A) → Finishing (transaction stopped, still plugged) → Available
    (unplugged). ``outbox`` holds what the OCPP client must send, in order.
    """

    config: OcppChargerConfig
    now: datetime
    status: str = "Available"
    plugged: bool = False
    authorised_tag: str | None = None
    car_soc_pct: float = 40.0
    car_battery_wh: float = 60000.0
    energy_wh: float = 0.0
    default_profile: _Profile | None = None
    tx_profile: _Profile | None = None
    local_tx: int | None = None  # the running transaction's local number
    tx_ids: dict[int, int] = field(default_factory=dict)  # local number → central system's id
    outbox: deque[Outgoing] = field(default_factory=deque)
    dropped: int = 0  # transaction messages lost to a full queue
    clock_skew_s: float = 0.0
    _numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.car_soc_pct = self.config.car_soc_pct
        self.car_battery_wh = self.config.car_battery_wh

    # ---- what the charger shows -----------------------------------------------------------

    def stamp(self, at: datetime | None = None) -> str:
        """A timestamp on the charger's own clock (skewed by the ``clock_skew_s`` fault)."""
        when = (at or self.now) + timedelta(seconds=self.clock_skew_s)
        return when.isoformat().replace("+00:00", "Z")

    @property
    def limit_a(self) -> float:
        """The current the charging profiles allow now (the hardware limit without one)."""
        limit = self.config.max_current_a
        for profile in (self.tx_profile, self.default_profile):
            if profile is not None and (profile.until is None or self.now < profile.until):
                if profile is self.tx_profile and profile.transaction_id not in (
                        None, self.tx_ids.get(self.local_tx or -1)):
                    continue
                return min(limit, profile.limit_a)
        return limit

    @property
    def power_w(self) -> float:
        """What the car draws now."""
        if self.status != "Charging":
            return 0.0
        cfg = self.config
        return min(self.limit_a * cfg.phases * cfg.voltage_v, cfg.car_max_w)

    def truth(self) -> dict[str, Any]:
        """The charger's and the car's state as JSON."""
        return {
            "status": self.status, "plugged": self.plugged, "power_w": self.power_w,
            "energy_wh": self.energy_wh, "car_soc_pct": self.car_soc_pct,
            "limit_a": self.limit_a, "transaction": self.tx_ids.get(self.local_tx or -1),
            "in_transaction": self.local_tx is not None, "queued": len(self.outbox),
            "dropped": self.dropped, "clock_skew_s": self.clock_skew_s,
        }

    # ---- time -----------------------------------------------------------------------------

    def advance(self, dt_s: float) -> None:
        """``dt_s`` simulated seconds at the present power: the meter and the car fill."""
        power = self.power_w
        self.now += timedelta(seconds=dt_s)
        if power > 0:
            added = power * dt_s / 3600
            self.energy_wh += added
            self.car_soc_pct = min(100.0, self.car_soc_pct + added / self.car_battery_wh * 100)
        self.settle()

    def settle(self) -> None:
        """Move between Charging, SuspendedEV and SuspendedEVSE as the car and limit say."""
        if self.local_tx is None or self.status not in ("Charging", "SuspendedEV",
                                                         "SuspendedEVSE", "Preparing"):
            return
        if self.car_soc_pct >= 100.0:
            self._set("SuspendedEV")
        elif self.limit_a < MIN_CURRENT_A:
            self._set("SuspendedEVSE")
        else:
            self._set("Charging")

    # ---- the driver and the car -----------------------------------------------------------

    def plug(self, plugged: bool) -> None:
        """The car is plugged in (a transaction starts once authorised) or pulled out."""
        if plugged and not self.plugged:
            self.plugged = True
            self._set("Preparing")
            if self.config.auto_authorize and self.authorised_tag is None:
                self.authorised_tag = "FREEVEND"
            self._maybe_start()
        elif not plugged and self.plugged:
            self.plugged = False
            if self.local_tx is not None:
                self._stop("EVDisconnected")
            self.authorised_tag = None
            self._set("Available")

    def authorize(self, id_tag: str) -> None:
        """An RFID card or RemoteStartTransaction: the next (or present) plug-in charges."""
        self.authorised_tag = id_tag
        self._maybe_start()

    def remote_stop(self, transaction_id: int) -> bool:
        """RemoteStopTransaction: True when it names the running transaction."""
        if self.local_tx is None or self.tx_ids.get(self.local_tx) != transaction_id:
            return False
        self._stop("Remote")
        return True

    def set_profile(self, purpose: str, limit_a: float, duration_s: float | None,
                    transaction_id: int | None) -> bool:
        """SetChargingProfile: TxDefaultProfile or TxProfile (only for the running transaction)."""
        until = None if duration_s is None else self.now + timedelta(seconds=duration_s)
        if purpose == "TxDefaultProfile":
            self.default_profile = _Profile(limit_a, until)
        elif purpose == "TxProfile":
            running = self.tx_ids.get(self.local_tx or -1)
            if running is None or (transaction_id is not None and transaction_id != running):
                return False
            self.tx_profile = _Profile(limit_a, until, running)
        else:
            return False
        self.settle()
        return True

    def confirm_start(self, local_tx: int, transaction_id: int, *, accepted: bool = True) -> None:
        """The central system's transactionId for a StartTransaction; a tag it did not accept
        ends the transaction at once (reason DeAuthorized), as OCPP 1.6 has it by default."""
        self.tx_ids[local_tx] = transaction_id
        if not accepted and self.local_tx == local_tx:
            self._stop("DeAuthorized")
            self.authorised_tag = None

    def meter_values(self) -> None:
        """Queue a MeterValues sample of the running transaction (register, power, car SoC)."""
        if self.local_tx is None:
            return
        self._queue(Outgoing("MeterValues", {"connectorId": 1, "meterValue": [{
            "timestamp": self.stamp(), "sampledValue": [
                {"value": f"{self.energy_wh:.1f}", "measurand": "Energy.Active.Import.Register",
                 "unit": "Wh"},
                {"value": f"{self.power_w:.1f}", "measurand": "Power.Active.Import", "unit": "W"},
                {"value": f"{self.car_soc_pct:.1f}", "measurand": "SoC", "unit": "Percent"},
            ]}]}, self.local_tx, transactional=True))

    # ---- inside ---------------------------------------------------------------------------

    def _maybe_start(self) -> None:
        if not self.plugged or self.authorised_tag is None or self.local_tx is not None:
            return
        self.local_tx = next(self._numbers)
        self.tx_profile = None
        self._queue(Outgoing("StartTransaction", {
            "connectorId": 1, "idTag": self.authorised_tag,
            "meterStart": round(self.energy_wh), "timestamp": self.stamp()},
            self.local_tx, transactional=True))
        self._set("Charging")
        self.settle()

    def _stop(self, reason: str) -> None:
        self._queue(Outgoing("StopTransaction", {
            "meterStop": round(self.energy_wh), "timestamp": self.stamp(), "reason": reason,
            **({"idTag": self.authorised_tag} if self.authorised_tag else {})},
            self.local_tx, transactional=True))
        self.local_tx = None
        self.tx_profile = None
        self._set("Finishing")

    def _set(self, status: str) -> None:
        if status != self.status:
            self.status = status
            self._queue(Outgoing("StatusNotification", {
                "connectorId": 1, "errorCode": "NoError", "status": status,
                "timestamp": self.stamp()}))

    def _queue(self, message: Outgoing) -> None:
        if len(self.outbox) >= QUEUE_MAX:
            self.outbox.popleft()
            self.dropped += 1
        self.outbox.append(message)
