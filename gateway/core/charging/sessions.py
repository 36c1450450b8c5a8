"""Charging sessions from OCPP transactions: energy, duration, the charge point's clock, states."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gateway.core.history.charging import ChargeSession

#: Clock offsets smaller than this are network and processing delay, not a wrong clock.
SKEW_TOLERANCE_S = 60.0
_LAG_SAMPLES = 32

#: OCPP 1.6 ChargePointStatus → Fleet ``wall_connector_state`` (docs/api.md "Wall connectors").
WALL_CONNECTOR_STATE = {
    "Available": 2,      # not_connected
    "Preparing": 4,      # connected
    "Charging": 1,       # charging
    "SuspendedEV": 9,    # waiting_car
    "SuspendedEVSE": 10,  # charging_reduced: the gateway holds it (limit 0, no surplus)
    "Finishing": 8,      # charging_finished
    "Reserved": 2,
    "Unavailable": 7,
    "Faulted": 7,        # error
}
BOOTING_STATE = 0


def wall_connector_state(status: str | None) -> int:
    """The Fleet state of a connector in this OCPP status (0 booting before the first one)."""
    return BOOTING_STATE if status is None else WALL_CONNECTOR_STATE.get(status, 7)


@dataclass(slots=True)
class ClockOffset:
    """How far a charge point's clock is ahead of ours, from the lags of its timestamps.

    A message can only arrive after its timestamp, never before, so the smallest lag seen
    (``received - stamped``) over recent messages is minus the offset: queued messages replayed
    after a reconnect have large lags and do not move it.
    """

    lags_s: deque[float] = field(default_factory=lambda: deque(maxlen=_LAG_SAMPLES))

    def seen(self, stamped: datetime, received: datetime) -> None:
        """Note one message stamped ``stamped`` by the charge point, received at ``received``."""
        self.lags_s.append((received - stamped).total_seconds())

    @property
    def ahead_s(self) -> float:
        """Seconds the charge point's clock is ahead (0 within the tolerance or without data)."""
        if not self.lags_s:
            return 0.0
        ahead = -min(self.lags_s)
        return ahead if abs(ahead) > SKEW_TOLERANCE_S else 0.0

    def corrected(self, stamped: datetime, received: datetime) -> datetime:
        """``stamped`` on our clock, never later than when it was received."""
        return min(stamped - timedelta(seconds=self.ahead_s), received)


def session_of(
    *, started: datetime, stopped: datetime, meter_start_wh: float, meter_stop_wh: float,
) -> ChargeSession:
    """One charge-history session; a meter that went backwards (a replaced or reset meter)
    counts 0 Wh, a stop stamped before its start 0 s."""
    return ChargeSession(
        start=started,
        duration_s=max((stopped - started).total_seconds(), 0.0),
        energy_wh=max(meter_stop_wh - meter_start_wh, 0.0),
    )


@dataclass(frozen=True, slots=True)
class MeterSample:
    """One MeterValues sample as the gateway uses it (None where the charge point sent none)."""

    stamped: datetime
    power_w: float | None = None
    energy_wh: float | None = None
    soc_pct: float | None = None


_USED = frozenset({"Energy.Active.Import.Register", "Power.Active.Import", "SoC"})
_SCALE = {"W": 1.0, "kW": 1000.0, "Wh": 1.0, "kWh": 1000.0, "Percent": 1.0}


def parse_timestamp(text: object) -> datetime | None:
    """An OCPP timestamp (RFC 3339 with offset or ``Z``); None when it is not one."""
    if not isinstance(text, str) or len(text) > 40:
        return None
    try:
        stamped = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None
    return stamped if stamped.utcoffset() is not None else None


def meter_samples(meter_value: object) -> tuple[list[MeterSample], int]:
    """The samples of a MeterValues ``meter_value`` list (keys in snake case, as the ocpp library
    hands them) and how many sampled values were skipped as unreadable. Phase values are summed
    only for power; energy and SoC take the value without a phase."""
    samples: list[MeterSample] = []
    skipped = 0
    for entry in meter_value if isinstance(meter_value, list) else []:
        stamped = parse_timestamp(entry.get("timestamp")) if isinstance(entry, dict) else None
        values = entry.get("sampled_value") if isinstance(entry, dict) else None
        if stamped is None or not isinstance(values, list):
            skipped += 1
            continue
        power = energy = soc = None
        for value in values:
            try:
                measurand = value.get("measurand", "Energy.Active.Import.Register")
                if measurand not in _USED:
                    continue  # currents, voltages, exports...: not what the gateway shows
                unit = value.get("unit", "Percent" if measurand == "SoC" else
                                 "W" if measurand.startswith("Power") else "Wh")
                number = float(value["value"]) * _SCALE[unit]
            except (AttributeError, KeyError, TypeError, ValueError):
                skipped += 1
                continue
            if not math.isfinite(number) or abs(number) > 1e12:
                skipped += 1
                continue
            if measurand == "Power.Active.Import":
                power = (power or 0.0) + number if value.get("phase") else number
            elif measurand == "Energy.Active.Import.Register" and not value.get("phase"):
                energy = number
            elif measurand == "SoC":
                soc = number
        samples.append(MeterSample(stamped, power, energy, soc))
    return samples, skipped
