"""Configuration of EV chargers: the OCPP central system's listener and each site's charge points."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.core.charging.rules import ChargerRating, ReserveRule, SolarRule
from gateway.core.config.hosts import valid_host


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OcppSection(_Strict):
    """The OCPP 1.6J central system: where charge points connect (``ws://host:port/{id}``)."""

    host: str = "127.0.0.1"
    port: int = Field(9000, ge=0, le=65535)
    heartbeat_interval_s: int = Field(60, ge=1, le=86400)
    control_interval_s: float = Field(5.0, gt=0, le=3600)  # how often limits are recomputed
    # A charging profile the gateway sets lapses after this many seconds unless refreshed, and
    # the charge point falls back to its TxDefaultProfile (``safe_current_a``).
    profile_lease_s: int = Field(300, ge=10, le=86400)
    # A charge point's power is no longer served (0) when its last MeterValues is this old.
    meter_stale_s: float = Field(120.0, gt=0, le=86400)

    check_host = field_validator("host")(valid_host)


class ChargePointConfig(_Strict):
    """One OCPP charge point of a site.

    ``password``: HTTP Basic password (OCPP 1.6 security profile 1: user = the id); None accepts
    the id without one. ``authorize``: ``accept_all`` or only ``id_tags``. ``mode``: ``full``
    power or ``solar`` surplus only (evcc's "PV"). ``safe_current_a``: the TxDefaultProfile a
    charge point keeps when the gateway is gone.
    """

    id: str = Field(min_length=1, max_length=48, pattern=r"^[A-Za-z0-9._\-:]+$")
    name: str | None = None
    password: str | None = Field(None, min_length=8, max_length=40)
    connectors: int = Field(1, ge=1, le=8)
    authorize: Literal["accept_all", "local_list"] = "accept_all"
    id_tags: list[str] = Field(default_factory=list, max_length=1000)
    mode: Literal["full", "solar"] = "full"
    min_current_a: float = Field(6.0, ge=0, le=80)
    max_current_a: float = Field(16.0, gt=0, le=80)
    phases: Literal[1, 3] = 3
    voltage_v: float = Field(230.0, gt=0, le=480)
    safe_current_a: float = Field(6.0, ge=0, le=80)
    solar_start_w: float = Field(1400.0, ge=0)
    solar_stop_delay_s: float = Field(300.0, ge=0)
    solar_battery_priority_pct: float = Field(50.0, ge=0, le=100)

    @model_validator(mode="after")
    def _currents(self) -> ChargePointConfig:
        if self.min_current_a > self.max_current_a:
            raise ValueError("min_current_a is above max_current_a")
        return self

    @property
    def rating(self) -> ChargerRating:
        """The charger's current range and wiring."""
        return ChargerRating(min_current_a=self.min_current_a, max_current_a=self.max_current_a,
                             phases=self.phases, voltage_v=self.voltage_v)

    @property
    def solar_rule(self) -> SolarRule:
        """The solar-surplus rule's thresholds."""
        return SolarRule(start_surplus_w=self.solar_start_w, stop_delay_s=self.solar_stop_delay_s,
                         battery_priority_pct=self.solar_battery_priority_pct)

    @property
    def reserve_rule(self) -> ReserveRule:
        """The off-grid reserve rule's band."""
        return ReserveRule()
