"""The configuration of a generic MQTT device: its points and topics (importable without its transport)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from drivers.base import Capability
from drivers.mqtt_battery.points import expand_topic
from drivers.mqtt_login import BrokerLoginOptions
from drivers.topics import valid_topic

READ_POINTS = ("soc_pct", "battery_w", "grid_w", "solar_w")
WRITE_POINTS = ("reserve_pct", "grid_charging", "export_limit_w")
BOOLEAN_POINTS = frozenset({"grid_charging"})


class ReadPoint(BaseModel):
    """Where one measured value comes from.

    ``value_path``: dotted path into a JSON payload (``soc``, ``data.battery.power``), None =
    the raw payload. Gateway value = device value x ``scale``, negated when ``invert_sign``
    (e.g. ``scale: 1000`` for kW, ``invert_sign: true`` for a battery reporting + while charging).
    Topics may use ``{base}`` (the device's ``base_topic``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    state_topic: str = Field(min_length=1)
    value_path: str | None = Field(None, pattern=r"^[^.\s]+(\.[^.\s]+)*$")
    scale: float = 1.0
    invert_sign: bool = False

    @field_validator("scale")
    @classmethod
    def _nonzero(cls, value: float) -> float:
        if value == 0:
            raise ValueError("scale must not be 0")
        return value


class WritePoint(ReadPoint):
    """A setting: read from ``state_topic`` (the echo a write is confirmed on), set via ``command_topic``.

    ``payload_template`` replaces ``{value}`` by the JSON literal of the device value (``20``,
    ``2.5``, ``true``, ``null`` for "unlimited"), e.g. ``{value}`` or ``{"value": {value}}``.
    Commands are never retained. ``tolerance``: how far (gateway units) the echo may differ.
    """

    command_topic: str = Field(min_length=1)
    payload_template: str = Field("{value}", pattern=r"\{value\}")
    qos: int = Field(1, ge=0, le=2)
    retain: Literal[False] = False
    tolerance: float = Field(0.5, ge=0)


class MqttPoints(BaseModel):
    """The points a device has; capabilities follow from which are configured."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    soc_pct: ReadPoint | None = None  # %
    battery_w: ReadPoint | None = None  # W, + discharging
    grid_w: ReadPoint | None = None  # W, + importing
    solar_w: ReadPoint | None = None  # W
    reserve_pct: WritePoint | None = None  # %
    grid_charging: WritePoint | None = None  # bool
    export_limit_w: WritePoint | None = None  # W, null = unlimited

    @model_validator(mode="after")
    def _coherent(self) -> MqttPoints:
        if (self.soc_pct is None) != (self.battery_w is None):
            raise ValueError("a battery needs both soc_pct and battery_w points (or neither)")
        if not self.configured():
            raise ValueError("configure at least one point")
        return self

    def configured(self) -> dict[str, ReadPoint]:
        """Every configured point by name (write points included)."""
        names = (*READ_POINTS, *WRITE_POINTS)
        return {n: p for n in names if (p := getattr(self, n)) is not None}

    def writable(self) -> dict[str, WritePoint]:
        """The configured write points by name."""
        return {n: p for n in WRITE_POINTS if isinstance(p := getattr(self, n), WritePoint)}


class MqttBatteryOptions(BrokerLoginOptions):
    """Configuration of one generic MQTT device (battery, meter or PV), configured per point.

    ``availability_topic``: an LWT-style topic; ``payload_not_available`` there makes reads fail.
    ``stale_after_s``: reads fail when a configured point has not been reported for that long.
    ``capacity_wh`` / ``max_charge_w`` / ``max_discharge_w``: static nameplate values.
    ``username`` / ``password`` / ``tls``: the broker's login, see ``drivers.mqtt_login``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str
    port: int = Field(1883, ge=1, le=65535)
    base_topic: str | None = Field(None, min_length=1)
    points: MqttPoints
    availability_topic: str | None = None
    payload_available: str = "online"
    payload_not_available: str = "offline"
    qos: int = Field(1, ge=0, le=2)  # of the state subscriptions
    stale_after_s: float = Field(10.0, gt=0)
    confirm_timeout_s: float = Field(3.0, gt=0)
    connect_timeout_s: float = Field(5.0, gt=0)  # broker connection and first values
    capacity_wh: float | None = Field(None, gt=0)
    max_charge_w: float | None = Field(None, gt=0)
    max_discharge_w: float | None = Field(None, gt=0)
    manufacturer: str = ""
    model: str = "MQTT device"
    serial_number: str = ""

    @model_validator(mode="after")
    def _topics_expand(self) -> MqttBatteryOptions:
        for name, topic in self.topics().items():
            if not valid_topic(topic):
                raise ValueError(f"{name}: {topic!r} is not a topic (no wildcards)")
        return self

    def topic(self, template: str) -> str:
        """A configured topic with ``{base}`` expanded."""
        return expand_topic(template, self.base_topic)

    def topics(self) -> dict[str, str]:
        """Every configured topic, expanded, keyed by where it is configured."""
        out: dict[str, str] = {}
        for name, point in self.points.configured().items():
            out[f"{name}.state_topic"] = self.topic(point.state_topic)
            if isinstance(point, WritePoint):
                out[f"{name}.command_topic"] = self.topic(point.command_topic)
        if self.availability_topic is not None:
            out["availability_topic"] = self.topic(self.availability_topic)
        return out


def capabilities_of(points: MqttPoints) -> frozenset[Capability]:
    """What a device with these points measures and honours."""
    caps: set[Capability] = set()
    if points.soc_pct is not None and points.battery_w is not None:
        caps.add(Capability.BATTERY)
    if points.grid_w is not None:
        caps.add(Capability.GRID_METER)
    if points.solar_w is not None:
        caps.add(Capability.SOLAR)
    if points.reserve_pct is not None:
        caps.add(Capability.BACKUP_RESERVE)
    if points.grid_charging is not None:
        caps.add(Capability.GRID_CHARGING)
    if points.export_limit_w is not None:
        caps.add(Capability.EXPORT_LIMIT)
    return frozenset(caps)
