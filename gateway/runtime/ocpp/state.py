"""What the gateway knows of each charge point: connection, connectors, transactions, limits."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from gateway.core.charging.rules import SolarState
from gateway.core.charging.sessions import ClockOffset, wall_connector_state
from gateway.core.config import ChargePointConfig

#: The longest the solar rule waits for the meters to show a limit change.
SETTLE_MAX_S = 60.0


@dataclass(slots=True)
class ConnectorState:
    """One connector: its OCPP status, live meter, the open transaction and the limit in force."""

    status: str | None = None
    error_code: str = "NoError"
    power_w: float = 0.0
    power_at: float | None = None  # monotonic s of the sample ``power_w`` came from
    energy_wh: float | None = None
    energy_at: datetime | None = None  # when ``energy_wh`` was sampled (our clock)
    soc_pct: float | None = None
    transaction_id: int | None = None
    limit_a: float | None = None  # what the gateway last set by TxProfile (None: not yet)
    limit_sent_at: float = 0.0  # monotonic s


@dataclass(slots=True)
class ChargerState:
    """A configured charge point of a site (connected or not)."""

    config: ChargePointConfig
    site_id: int
    connected: bool = False
    boot: dict[str, str] = field(default_factory=dict)  # vendor, model, serial, firmware
    connectors: dict[int, ConnectorState] = field(default_factory=dict)
    clock: ClockOffset = field(default_factory=ClockOffset)
    solar: SolarState = field(default_factory=SolarState)
    solar_limit_a: float | None = None  # the solar rule's last answer
    changed_at: float = 0.0  # monotonic s of the last limit change the charger accepted
    changed_version: int = 0  # the site's telemetry_version then
    reserve_stopped: bool = False
    last_seen: datetime | None = None
    meter_stale_s: float = 120.0

    def __post_init__(self) -> None:
        for n in range(1, self.config.connectors + 1):
            self.connectors.setdefault(n, ConnectorState())

    @property
    def id(self) -> str:
        """The charge point identity (the last part of its URL)."""
        return self.config.id

    @property
    def power_w(self) -> float:
        """What the charge point draws now, over its connectors (0 while not charging, and
        once the last MeterValues is older than ``meter_stale_s``)."""
        now = time.monotonic()
        return sum(c.power_w for c in self.connectors.values()
                   if c.status == "Charging" and c.power_at is not None
                   and now - c.power_at <= self.meter_stale_s)

    def settled(self, telemetry_version: int) -> bool:
        """Whether both the site's meter and this charger's have reported since the last limit
        change (the surplus read before that mixes the old draw with the new)."""
        if not self.changed_at or time.monotonic() - self.changed_at > SETTLE_MAX_S:
            return True  # (a charger that sends no MeterValues is not waited for forever)
        if telemetry_version < self.changed_version + 2:
            return False
        return all(c.power_at is not None and c.power_at > self.changed_at
                   for c in self.connectors.values()
                   if c.status == "Charging" and c.transaction_id is not None)

    @property
    def state(self) -> int:
        """Fleet ``wall_connector_state``: the busiest connector's (7 error, 0 booting)."""
        if not self.connected and not any(c.status for c in self.connectors.values()):
            return wall_connector_state(None)
        order = ("Charging", "SuspendedEVSE", "SuspendedEV", "Preparing", "Finishing", "Faulted")
        statuses = [c.status for c in self.connectors.values()]
        for status in order:
            if status in statuses:
                return wall_connector_state(status)
        return wall_connector_state(statuses[0] if statuses else None)

    @property
    def fault_state(self) -> int:
        """Fleet ``wall_connector_fault_state``: 2 none, 7 when a connector reports an error."""
        return 7 if any(c.error_code != "NoError" or c.status == "Faulted"
                        for c in self.connectors.values()) else 2
